//! Entry point of the page (built by trunk).

fn main() {
    #[cfg(target_arch = "wasm32")]
    tributary_web::app::main();
}
