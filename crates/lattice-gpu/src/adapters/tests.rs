//! Adapter selection on synthetic adapter lists: identical GPUs, mixed nodes, GL duplicates,
//! CUDA_VISIBLE_DEVICES and --gpu.

use super::*;

fn gpu(name: &str, api: Api, kind: Kind, bus: &str) -> AdapterFacts {
    AdapterFacts {
        name: name.into(),
        api,
        kind,
        vendor: 0x10de,
        device: 0x2330,
        pci_bus_id: bus.into(),
    }
}

/// Eight identical GPUs through Vulkan (bus ids reported) and again through GL (no bus id,
/// GL's longer name), GL listed first.
fn eight_h100s() -> Vec<AdapterFacts> {
    let mut list = vec![AdapterFacts {
        device: 0,
        ..gpu(
            "NVIDIA H100 80GB HBM3/PCIe/SSE2",
            Api::Gl,
            Kind::Discrete,
            "",
        )
    }];
    list.extend((0..8).map(|k| {
        gpu(
            "NVIDIA H100 80GB HBM3",
            Api::Vulkan,
            Kind::Discrete,
            &format!("0000:{:02x}:00.0", 0x18 + 0x10 * (7 - k)),
        )
    }));
    list
}

fn usable(list: &[AdapterFacts], req: &GpuRequest) -> Vec<usize> {
    in_gpu_order(&assess(list, req))
}

#[test]
fn eight_identical_gpus_stay_eight_and_each_rank_takes_its_own() {
    let list = eight_h100s();
    let req = GpuRequest::default();
    assert_eq!(usable(&list, &req), (1..=8).collect::<Vec<_>>());
    assert_eq!(assess(&list, &req)[0], Verdict::Duplicate { of: 1 });
    let picks: Vec<usize> = (0..8)
        .map(|k| {
            let req = GpuRequest {
                local_rank: Some(k),
                ..GpuRequest::default()
            };
            choose(&list, &req).unwrap()
        })
        .collect();
    assert_eq!(picks, (1..=8).collect::<Vec<_>>(), "rank k takes device k");
    // Ranks past the GPU count share, counting around.
    let req = GpuRequest {
        local_rank: Some(9),
        ..GpuRequest::default()
    };
    assert_eq!(choose(&list, &req).unwrap(), 2);
}

#[test]
fn one_device_through_two_apis_is_merged_by_bus_id_and_vulkan_kept() {
    let list = vec![
        gpu("GPU X", Api::Gl, Kind::Discrete, "0000:01:00.0"),
        gpu("GPU X", Api::Vulkan, Kind::Discrete, "0000:01:00.0"),
        gpu("GPU X", Api::Vulkan, Kind::Discrete, "0000:02:00.0"),
    ];
    let req = GpuRequest {
        allow_untrusted: true,
        ..GpuRequest::default()
    };
    assert_eq!(usable(&list, &req), [1, 2]);
    assert_eq!(assess(&list, &req)[0], Verdict::Duplicate { of: 1 });
}

#[test]
fn a_mixed_node_puts_discrete_first_and_drops_software_and_gl() {
    let list = vec![
        gpu(
            "llvmpipe (LLVM 15.0.7, 256 bits)",
            Api::Vulkan,
            Kind::Software,
            "",
        ),
        AdapterFacts {
            vendor: 0x8086,
            device: 0x46a6,
            ..gpu(
                "Intel(R) Iris(R) Xe Graphics",
                Api::Vulkan,
                Kind::Integrated,
                "",
            )
        },
        gpu(
            "NVIDIA RTX A4000",
            Api::Vulkan,
            Kind::Discrete,
            "0000:01:00.0",
        ),
        AdapterFacts {
            vendor: 0x1002,
            device: 0x73bf,
            ..gpu("AMD Radeon RX 6800", Api::Gl, Kind::Discrete, "")
        },
    ];
    let req = GpuRequest::default();
    let v = assess(&list, &req);
    assert_eq!(v[0], Verdict::SoftwareBesideHardware);
    assert_eq!(v[3], Verdict::Untrusted);
    assert_eq!(usable(&list, &req), [2, 1]);
    assert_eq!(
        choose(&list, &req).unwrap(),
        2,
        "one process takes the discrete GPU"
    );
    // On request the GL-only device joins, after the trusted ones.
    let req = GpuRequest {
        allow_untrusted: true,
        ..GpuRequest::default()
    };
    assert_eq!(usable(&list, &req), [2, 1, 3]);
}

#[test]
fn a_task_that_sees_one_gpu_uses_it_whatever_its_rank() {
    let list = vec![gpu(
        "NVIDIA H100",
        Api::Vulkan,
        Kind::Discrete,
        "0000:c1:00.0",
    )];
    for k in 0..8 {
        let req = GpuRequest {
            local_rank: Some(k),
            ..GpuRequest::default()
        };
        assert_eq!(choose(&list, &req).unwrap(), 0);
    }
    // CUDA_VISIBLE_DEVICES naming one of eight that Vulkan still shows: the third in bus
    // order, for every rank.
    let list = eight_h100s();
    let req = GpuRequest {
        local_rank: Some(5),
        visible: parse_visible("2"),
        ..GpuRequest::default()
    };
    let bus = |i: usize| list[i].pci_bus_id.clone();
    assert_eq!(bus(choose(&list, &req).unwrap()), "0000:38:00.0");
    // A device list the API already honours is left alone.
    let one = vec![gpu(
        "NVIDIA H100",
        Api::Vulkan,
        Kind::Discrete,
        "0000:c1:00.0",
    )];
    let req = GpuRequest {
        visible: parse_visible("5"),
        ..GpuRequest::default()
    };
    assert_eq!(choose(&one, &req).unwrap(), 0);
}

#[test]
fn gl_only_machines_have_no_usable_adapter_unless_asked() {
    let list = vec![gpu(
        "llvmpipe (LLVM 15.0.7, 256 bits)",
        Api::Gl,
        Kind::Software,
        "",
    )];
    let e = choose(&list, &GpuRequest::default()).unwrap_err();
    assert!(
        e.starts_with("llvmpipe") && e.contains("not validated"),
        "{e}"
    );
    let req = GpuRequest {
        allow_untrusted: true,
        ..GpuRequest::default()
    };
    assert_eq!(choose(&list, &req).unwrap(), 0);
    assert_eq!(
        choose(&[], &GpuRequest::default()).unwrap_err(),
        "no adapter was found"
    );
}

#[test]
fn an_explicit_gpu_is_taken_or_refused_by_number() {
    let list = eight_h100s();
    let req = GpuRequest {
        device: Some(3),
        local_rank: Some(0),
        ..GpuRequest::default()
    };
    assert_eq!(choose(&list, &req).unwrap(), 4, "--gpu overrides the rank");
    let req = GpuRequest {
        device: Some(8),
        ..GpuRequest::default()
    };
    let e = choose(&list, &req).unwrap_err();
    assert!(e.contains("GPU 8") && e.contains("8 usable"), "{e}");
    assert_eq!(parse_visible("GPU-1234-uuid"), None);
    assert_eq!(parse_visible(""), None);
    assert_eq!(parse_visible("0, 3"), Some(vec![0, 3]));
}
