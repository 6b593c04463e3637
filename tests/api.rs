//! The library API gives the same results as the CLI, keyed by item id, and refuses bad
//! submissions with a clear error.

use lattice::core::config;
use lattice::{
    BackendChoice, BatchDone, Error, Item, Observer, ObserverError, Output, Simulation, Snapshot,
    StepEvent,
};

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
        let api = results.get(id).unwrap().output.states();
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
    let Output::Flows { planes, totals, .. } = &r.get(9).unwrap().output else {
        panic!("a flows output");
    };
    assert_eq!(planes.len(), 2 * 30);
    assert_eq!(totals.created, 30);
    // Same id, same seed: the same result in another run.
    let again = sim.run(&[Item::seeded(5)]).unwrap();
    let (a, b) = (&r.get(5).unwrap().output, &again.get(5).unwrap().output);
    assert_eq!(a, b);
}

#[test]
fn bad_submissions_are_refused() {
    let cfg = config::parse(MOE, "t.ron".as_ref()).unwrap();
    let sim = Simulation::new(cfg, BackendChoice::Cpu).unwrap();
    // Typed errors a caller can match on, with the messages a user reads.
    let e = sim.run(&[Item::seeded(1), Item::seeded(1)]).unwrap_err();
    assert!(matches!(e, Error::DuplicateItem(1)), "{e:?}");
    assert!(
        e.to_string().contains("item id 1 is submitted twice"),
        "{e}"
    );
    let e = sim.run(&[Item::states(4, vec![0.0; 3])]).unwrap_err();
    assert!(matches!(e, Error::Input { item: 4, .. }), "{e:?}");
    assert!(
        e.to_string().contains("item 4") && e.to_string().contains("1440"),
        "{e}"
    );
    let mut bad = config::parse(MOE, "t.ron".as_ref()).unwrap();
    bad.batch.items = 0;
    let e = Simulation::new(bad, BackendChoice::Cpu).err().unwrap();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(e.to_string().contains("batch.items"), "{e}");
}

/// Records what it is shown; keeps the states of the step-2 snapshot.
#[derive(Default)]
struct Recorder {
    steps: Vec<(usize, u32)>,
    snapshot: Vec<(u64, Vec<f32>)>,
    batches_done: usize,
}

impl Observer for Recorder {
    fn step(&mut self, e: &StepEvent<'_>) -> Result<(), ObserverError> {
        self.steps.push((e.batch, e.step));
        Ok(())
    }
    fn snapshot_every(&self) -> u32 {
        2
    }
    fn snapshot(&mut self, s: &Snapshot<'_>) -> Result<(), ObserverError> {
        let per = s.states.len() / s.items.len();
        for (k, pos) in s.items.clone().enumerate() {
            self.snapshot
                .push((pos as u64, s.states[k * per..(k + 1) * per].to_vec()));
        }
        Ok(())
    }
    fn batch_done(&mut self, _: &BatchDone<'_>) -> Result<(), ObserverError> {
        self.batches_done += 1;
        Ok(())
    }
}

#[test]
fn an_observer_sees_every_step_and_items_resume_from_its_snapshot() {
    let cfg = config::parse(MOE, "t.ron".as_ref()).unwrap();
    let mut sim = Simulation::new(cfg, BackendChoice::Cpu).unwrap();
    sim.set_steps(4);
    let items = [Item::seeded(0), Item::seeded(1), Item::seeded(2)];
    let mut rec = Recorder::default();
    let whole = sim.run_observed(&items, &mut rec).unwrap();
    // Batches of 2 and 1, four steps each, a snapshot at step 2 (never at the last step).
    let want: Vec<(usize, u32)> = [0, 1]
        .into_iter()
        .flat_map(|b| (1..=4).map(move |s| (b, s)))
        .collect();
    assert_eq!(rec.steps, want);
    assert_eq!(rec.batches_done, 2);
    assert_eq!(rec.snapshot.len(), 3);
    // Resubmitted from the snapshot with done_steps = 2: the same final states, bit for bit.
    let resumed: Vec<Item> = rec
        .snapshot
        .iter()
        .map(|(id, s)| Item {
            done_steps: 2,
            ..Item::states(*id, s.clone())
        })
        .collect();
    let again = sim.run(&resumed).unwrap();
    for id in 0..3 {
        assert_eq!(
            again.get(id).unwrap().output,
            whole.get(id).unwrap().output,
            "item {id}"
        );
    }
    let e = sim
        .run(&[Item {
            done_steps: 5,
            ..Item::seeded(0)
        }])
        .unwrap_err();
    assert!(e.to_string().contains("only 4"), "{e}");
}

#[test]
fn a_failing_item_fails_alone_with_its_step_and_batch() {
    let cfg = config::parse(MOE, "t.ron".as_ref()).unwrap();
    let sim = Simulation::new(cfg, BackendChoice::Cpu).unwrap();
    // Item 11 starts near f32::MAX everywhere: its first step overflows.
    let n = 5 * 4 * 3 * 24;
    let r = sim
        .run(&[
            Item::seeded(10),
            Item::states(11, vec![f32::MAX / 2.0; n]),
            Item::seeded(12),
        ])
        .unwrap();
    let failed: Vec<u64> = r.failed().map(|i| i.id).collect();
    assert_eq!(failed, [11]);
    let e = r.get(11).unwrap().error.clone().unwrap();
    assert!(
        matches!(e, lattice::ItemError::NonFinite { step: 1, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("non-finite state at step 1"), "{e}");
    assert_eq!(r.succeeded(), 2);
    // Batches of 2 then 1 (Fixed(2)): the third item ran in the second batch.
    assert_eq!(r.get(12).unwrap().batch, 1);
}
