use thiserror::Error;

/// Why a GPU operation could not run. Shape and size problems are caught before anything is
/// submitted, so a caller learns which argument was at fault instead of seeing a device error.
#[cfg(feature = "wgpu")]
#[derive(Debug, Error)]
pub enum GpuError {
    #[error("no GPU adapter available: {0}")]
    NoAdapter(#[from] wgpu::RequestAdapterError),
    #[error("the GPU adapter refused the device request: {0}")]
    RequestDevice(#[from] wgpu::RequestDeviceError),
    #[error("`{argument}` has {got} elements, expected {expected}")]
    Shape {
        argument: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("`{argument}` is empty: rows and cols must both be at least 1")]
    Empty { argument: &'static str },
    #[error("`{argument}` needs {bytes} bytes in one binding, over the device's limit of {limit}")]
    TooLarge {
        argument: &'static str,
        bytes: u64,
        limit: u64,
    },
    #[error("reading results back from the GPU failed: {0}")]
    Map(#[from] wgpu::BufferAsyncError),
    #[error("waiting for the GPU failed: {0}")]
    Poll(#[from] wgpu::PollError),
    #[error("the GPU rejected the work: {0}")]
    Device(String),
}

/// Why an SGMV call or an adapter upload was refused; checked before any work is queued.
#[derive(Debug, Error)]
pub enum SgmvError {
    #[error("`{argument}` has {got} elements, expected {expected}")]
    Shape {
        argument: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{argument} must be at least 1")]
    Empty { argument: &'static str },
    #[error("bad segments: {0}")]
    Segments(String),
    #[error("adapter does not fit the batch: {0}")]
    Mismatch(String),
    #[error("adapter {0} is not resident in the pool")]
    UnknownAdapter(u32),
    #[error("adapter pool: {0}")]
    Pool(String),
    #[error("adapter pool is full: {needed_bytes} bytes needed, {free_bytes} free")]
    PoolFull { needed_bytes: u64, free_bytes: u64 },
    #[error("reading back from the device failed: {0}")]
    Readback(String),
}
