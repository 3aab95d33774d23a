use crate::GpuError;

/// A wgpu device opened with the adapter's real limits.
///
/// wgpu's default limits are the downlevel WebGPU ones (e.g. 128 MiB storage bindings); kernels
/// that size pools and grids from the limits must see what the hardware allows, so the device is
/// requested with `adapter.limits()` and those limits are kept here.
#[derive(Debug, Clone)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
}

impl GpuContext {
    /// Opens the first adapter the platform offers. Natively the backend can be chosen with
    /// `WGPU_BACKEND` and the adapter with `WGPU_ADAPTER_NAME` (wgpu's own variables).
    pub async fn new() -> Result<Self, GpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle().with_env());
        let adapter = wgpu::util::initialize_adapter_from_env_or_default(&instance, None).await?;
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("tributary"),
                required_features: wgpu::Features::empty(),
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await?;
        Ok(Self::from_parts(device, queue, adapter.get_info()))
    }

    /// Adopts a device someone else opened (burn's `WgpuSetup`, say), so kernels share its queue.
    pub fn from_parts(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo) -> Self {
        let limits = device.limits();
        Self {
            device,
            queue,
            info,
            limits,
        }
    }

    /// Reads a mapped-for-read buffer back as f32s; asynchronous because the browser forbids
    /// blocking readback (on native the poll below completes the map before the await).
    pub(crate) async fn read_f32(&self, buffer: &wgpu::Buffer) -> Result<Vec<f32>, GpuError> {
        let slice = buffer.slice(..);
        let (sender, receiver) = futures_channel::oneshot::channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            // The receiver only goes away if the caller dropped this future; nothing to report.
            let _ = sender.send(result);
        });
        self.device.poll(wgpu::PollType::wait_indefinitely())?;
        receiver.await.map_err(|_| {
            GpuError::Device("the device was lost before the read finished".into())
        })??;
        let values = bytemuck::cast_slice::<u8, f32>(&slice.get_mapped_range()).to_vec();
        buffer.unmap();
        Ok(values)
    }
}
