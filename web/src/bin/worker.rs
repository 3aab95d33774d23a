//! Entry point of the inference worker (built by trunk as a no-modules worker script).

fn main() {
    #[cfg(target_arch = "wasm32")]
    {
        use gloo::worker::Registrable;
        tributary_web::worker::Inference::registrar().register();
    }
}
