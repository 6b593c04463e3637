//! The library API in a few lines: a MoE simulation from a shipped config and a flows
//! simulation from a config made in code, items submitted with ids, results read back by id.
//!
//! cargo run --release --example api

use lattice::core::config::{self, Simulation as Kind};
use lattice::{BackendChoice, Item, Output, Simulation};

fn main() -> lattice::Result<()> {
    // MoE lattice (configs/debug.ron): three seeded items and one with given initial states.
    let moe = Simulation::from_file("configs/debug.ron".as_ref(), BackendChoice::Auto)?;
    let Kind::Moe(m) = &moe.config().simulation else {
        unreachable!("debug.ron is a Moe config")
    };
    let (w, h, d) = m.lattice.dims;
    let cells = (w * h * d) as usize;
    let mut items: Vec<Item> = [101, 102, 103].map(Item::seeded).to_vec();
    items.push(Item::states(200, vec![0.05; cells * m.state_size as usize]));
    let results = moe.run(&items)?;
    println!(
        "MoE: {} of {} items ok on {} in {:.2} s",
        results.succeeded(),
        results.len(),
        results.stats.backend,
        results.stats.total_s
    );
    for (id, r) in &results.items {
        match &r.error {
            None => {
                let s = r.output.states();
                let rms = (s.iter().map(|v| v * v).sum::<f32>() / s.len() as f32).sqrt();
                println!("  item {id}: batch {}, rms state {rms:.4}", r.batch);
            }
            Some(e) => println!("  item {id}: failed: {e}"),
        }
    }

    // Energy flows from a config written in code.
    let text = "(seed: 1, batch: (items: 2), simulation: Flows((dims: (12, 10, 8), \
                carrier: (hidden: 64, layers: 2), displacement_scale: 40.0, \
                spawn: Some((threshold: 0.2)))))";
    let cfg = config::parse(text, "in-code.ron".as_ref())?;
    let flows = Simulation::new(cfg, BackendChoice::Auto)?;
    let results = flows.run(&[Item::seeded(1), Item::seeded(2)])?;
    for (id, r) in &results.items {
        if let Output::Flows { totals, .. } = &r.output {
            println!(
                "flows item {id}: {} created, {} front, {} back, {} unfinished",
                totals.created, totals.completed_front, totals.completed_back, totals.unfinished
            );
        }
    }
    Ok(())
}
