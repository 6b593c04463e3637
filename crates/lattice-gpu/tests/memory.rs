//! Batch sizing on a real adapter (lavapipe in CI): the binding limit, and 80 % of the memory
//! the adapter reports.

#[test]
fn items_that_fit_respect_one_binding_and_80_percent_of_device_memory() {
    let Some(ctx) = lattice_gpu::test_context() else {
        return;
    };
    let a = &ctx.adapter;
    if a.backend == "Vulkan" {
        let mem = a.device_memory.expect("Vulkan adapters report their heaps");
        assert!(mem >= 64 << 20, "{} reports {mem} bytes", a.name);
    }
    let b = ctx.max_binding();
    // Big per-item binding, tiny total: the binding decides.
    assert_eq!(ctx.items_that_fit(b / 4, 1), (4, "one GPU binding"));
    if let Some(mem) = a.device_memory {
        // Tiny binding, a tenth of the memory each: 8 fit in 80 %.
        let (n, why) = ctx.items_that_fit(1, mem / 10);
        assert_eq!(why, "80 % of the GPU's memory");
        assert_eq!(n, (mem / 10 * 8) / (mem / 10));
        assert_eq!(ctx.memory_budget(), Some(mem / 10 * 8));
    }
}
