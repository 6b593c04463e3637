//! The library API gives the same results as the CLI, keyed by item id, and refuses bad
//! submissions with a clear error.

use lattice_cli::api::{BackendChoice, Item, Output, Simulation};
use lattice_core::config;

const MOE: &str = "(seed: 3, batch: (items: 3, max_batch_size: Fixed(2)), simulation: Moe((lattice: \
                   (dims: (5, 4, 3), radius_ratio: 0.5), steps: 3)))";

#[test]
fn api_results_match_the_cli_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moe.ron");
    std::fs::write(&path, MOE).unwrap();
    let sim = Simulation::from_file(&path, BackendChoice::Cpu).unwrap();
    // Submitted out of order: results come back by id.
    let results = sim
        .run(&[Item::seeded(2), Item::seeded(0), Item::seeded(1)])
        .unwrap();
    assert_eq!(results.succeeded(), 3);
    assert_eq!(results.stats.batch_sizes, [2, 1]);
    let o = assert_cmd::Command::cargo_bin("lattice")
        .unwrap()
        .args(["-q", "run", "--backend", "cpu", "--out"])
        .arg(dir.path().join("out"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(dir.path().join("out/states.npy")).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let cli: Vec<f32> = npy.into_vec().unwrap();
    let per = cli.len() / 3;
    for id in 0..3u64 {
        let api = results.get(id).unwrap().output.as_ref().unwrap().states();
        assert_eq!(
            api,
            &cli[id as usize * per..(id as usize + 1) * per],
            "item {id}"
        );
    }
}

#[test]
fn flows_from_a_config_made_in_code() {
    let text = "(simulation: Flows((dims: (6, 5, 8), embedding_dim: 16, carrier: (hidden: 16, \
                layers: 1), neuron: (hidden: 8, output: 12), displacement_scale: 40.0)))";
    let cfg = config::parse(text, "t.ron".as_ref()).unwrap();
    let sim = Simulation::new(cfg, BackendChoice::Cpu).unwrap();
    let r = sim
        .run(&[Item::seeded(5), Item::embedding(9, vec![0.5; 16])])
        .unwrap();
    let Ok(Output::Flows { planes, totals, .. }) = &r.get(9).unwrap().output else {
        panic!("a flows output");
    };
    assert_eq!(planes.len(), 2 * 30);
    assert_eq!(totals.created, 30);
    // Same id, same seed: the same result in another run.
    let again = sim.run(&[Item::seeded(5)]).unwrap();
    let (a, b) = (&r.get(5).unwrap().output, &again.get(5).unwrap().output);
    assert_eq!(a.as_ref().unwrap(), b.as_ref().unwrap());
}

#[test]
fn bad_submissions_are_refused() {
    let cfg = config::parse(MOE, "t.ron".as_ref()).unwrap();
    let sim = Simulation::new(cfg, BackendChoice::Cpu).unwrap();
    let e = sim.run(&[Item::seeded(1), Item::seeded(1)]).unwrap_err();
    assert!(
        e.to_string().contains("item id 1 is submitted twice"),
        "{e}"
    );
    let e = sim.run(&[Item::states(4, vec![0.0; 3])]).unwrap_err();
    assert!(
        e.to_string().contains("item 4") && e.to_string().contains("1440"),
        "{e}"
    );
    let mut bad = config::parse(MOE, "t.ron".as_ref()).unwrap();
    bad.batch.items = 0;
    let e = Simulation::new(bad, BackendChoice::Cpu).err().unwrap();
    assert!(e.to_string().contains("batch.items"), "{e}");
}
