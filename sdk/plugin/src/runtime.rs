//! What a `no_std` wasm module needs to run: an allocator and a panic
//! handler. Only compiled for wasm; on the host target `std` provides both.

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// A panic becomes a trap, which the host reports as a typed error naming
/// the plugin. The message is logged first so the operator can see why.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let message = alloc::format!("panic: {}", info.message());
    crate::host::log(crate::host::Level::Error, &message);
    core::arch::wasm32::unreachable()
}
