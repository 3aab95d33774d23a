//! burn's wgpu runtime in a browser (tab or Web Worker): its synchronous set-up blocks, which the
//! web forbids, so the device is set up asynchronously once per JavaScript realm.

use std::cell::Cell;

use burn::backend::wgpu::{
    RuntimeOptions, WgpuDevice, graphics::AutoGraphicsApi, init_setup_async,
};

thread_local! {
    static READY: Cell<bool> = const { Cell::new(false) };
}

/// The default WebGPU device, set up on first use.
pub async fn wgpu_device() -> WgpuDevice {
    let device = WgpuDevice::default();
    if !READY.get() {
        init_setup_async::<AutoGraphicsApi>(&device, RuntimeOptions::default()).await;
        READY.set(true);
    }
    device
}
