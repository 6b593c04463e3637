//! `lattice run` on a Moe config: reads the initial states, submits every unfinished item to
//! the library API, keeps the checkpoint current through an observer, writes the outputs.

use std::path::Path;

use anyhow::bail;
use lattice_core::config::MoeConfig;
use lattice_core::inputs::read_items;
use lattice_core::io::write_f32;
use lattice_core::moe::initial_states;
use lattice_sim::ItemRecord;

use crate::images::write_vtk;

use super::by_items::{self, RankTiming};
use super::checkpoint::{Checkpoint, Header};
use super::metrics::{Metrics, MoeMetrics, MoeOutputs, Rate};
use super::{RunArgs, config_name, origin};
use crate::figures::{self, Figure, Panel};
use crate::progress::Progress;
use crate::ranks::{HaloTally, Ranks};
use crate::summary::{batches_line, peak_line, per_item_line, print_summary};
use lattice_sim::{
    BatchDone, Item, ItemError, Model, Observer, ObserverError, Simulation, Snapshot, Stats,
    StepEvent,
};

pub(super) fn run(
    args: &RunArgs,
    sim: &Simulation,
    quiet: bool,
    ranks: &Ranks,
    halo: Option<&HaloTally>,
) -> anyhow::Result<()> {
    let Model::Moe(model) = sim.model() else {
        bail!("{} is not a Moe config", sim.loaded().path.display());
    };
    let (moe, dims) = (&model.cfg, model.cache.dims());
    let items = sim.config().batch.items as usize;
    let (n, s) = (dims.cells_usize(), moe.state_size as usize);
    check_picture_args(args, moe.state_size, dims.d())?;
    // Under MPI this rank runs its share of the items, or its slab of every item; rank 0
    // gathers the rest.
    let slab = sim.domain().map(|d| d.planes.clone());
    let share = if slab.is_some() {
        0..items
    } else {
        ranks.share(items)
    };
    // Before anything big is allocated: does one batch fit?
    let batch = sim.batch_size(share.len().max(1))?;
    let shape = [items as u64, n as u64, s as u64];
    let (ck, mut states) = start_or_resume(args, sim, moe, shape)?;
    let mut order = run_order(&ck.done, moe.steps);
    order.retain(|b| share.contains(b));
    let submitted = submissions(args, &order, &ck.done, &states, n * s);
    let remaining: u64 = ck.done[share.clone()]
        .iter()
        .map(|&d| u64::from(moe.steps - d))
        .sum();
    let home = args.checkpoint_home();
    let mut watch = Watch {
        progress: Progress::new(remaining * n as u64, moe.steps, args.log_every, quiet),
        order: &order,
        ck,
        states: &mut states,
        cell_values: n * s,
        shape,
        steps: moe.steps,
        every: args.checkpoint_every,
        out: &home,
    };
    let results = sim.run_observed(&submitted, &mut watch)?;
    watch.progress.finish();
    let Watch { mut ck, .. } = watch;
    let timing = RankTiming::new(ranks, &share, &results.stats);
    let gathered = match (&slab, halo) {
        (Some(planes), Some(tally)) => {
            let timing = timing.with_slab(planes, tally);
            gather_slabs(ranks, timing, &mut states, dims.w() * dims.h(), s)?
        }
        _ => gather_items(ranks, timing, &mut states, &mut ck.results, n * s)?,
    };
    let Some(rank_timings) = gathered else {
        return Ok(());
    };
    let per_item: Vec<ItemRecord> = ck.results.iter().flatten().cloned().collect();
    let st = &results.stats;
    write_outputs(
        args,
        sim,
        (&states, shape),
        &per_item,
        st,
        batch,
        rank_timings,
    )?;
    print_moe_summary(args, sim, &per_item, st);
    fail_if_any_failed(&per_item)
}

/// The items to run, in `order`. Fresh seeded items are submitted as seeded (the API draws
/// the same states from the seed and the id), so only given or checkpointed states are copied.
/// Item ids are indices.
fn submissions(
    args: &RunArgs,
    order: &[usize],
    done: &[u32],
    states: &[f32],
    v: usize,
) -> Vec<Item> {
    (order.iter())
        .map(|&b| match (&args.init_states, done[b]) {
            (None, 0) => Item::seeded(b as u64),
            (_, steps) => Item {
                done_steps: steps,
                ..Item::states(b as u64, states[b * v..(b + 1) * v].to_vec())
            },
        })
        .collect()
}

/// `states.npy`, the pictures, the weights and `metrics.json`.
fn write_outputs(
    args: &RunArgs,
    sim: &Simulation,
    (states, shape): (&[f32], [u64; 3]),
    per_item: &[ItemRecord],
    st: &Stats,
    batch: usize,
    rank_timings: Vec<RankTiming>,
) -> anyhow::Result<()> {
    let Model::Moe(model) = sim.model() else {
        bail!("{} is not a Moe config", sim.loaded().path.display());
    };
    let (moe, dims) = (&model.cfg, model.cache.dims());
    let (n, s) = (dims.cells_usize(), moe.state_size as usize);
    write_f32(&args.out.join("states.npy"), &shape, states)?;
    let (slice_z, channel) = pictures(args, moe.steps, dims, s, &states[..n * s])?;
    sim.save_weights(&args.out.join("weights.safetensors"))?;
    let specific = MoeMetrics {
        simulation: "moe",
        dims: dims.as_array(),
        steps: moe.steps,
        state_size: s,
        neighbors: model.cache.stats(),
        init_states: origin(args.init_states.as_deref()),
        per_item,
        outputs: MoeOutputs {
            states: "states.npy",
            weights: "weights.safetensors",
            png: "states.png",
            vtk: "states.vtk",
            png_shows: format!("item 0, z = {slice_z}, channel {channel}"),
        },
    };
    Metrics::new(
        args,
        sim,
        st,
        batch,
        Rate::CellUpdatesPerS(st.work_per_s()),
        &specific,
    )
    .with_ranks(rank_timings)
    .write(args)
}

/// Runs by items: sends this rank's items' states and records to rank 0; there, puts every
/// rank's in place and returns the ranks' timings (`None` on the other ranks).
fn gather_items(
    ranks: &Ranks,
    timing: RankTiming,
    states: &mut [f32],
    results: &mut [Option<ItemRecord>],
    v: usize,
) -> anyhow::Result<Option<Vec<RankTiming>>> {
    let [a, b] = timing.items;
    let mine: Vec<ItemRecord> = results[a..b].iter().flatten().cloned().collect();
    let own = &states[a * v..b * v];
    let Some(parts) = by_items::gather(ranks, timing, mine, &[own])? else {
        return Ok(None);
    };
    let mut timings = Vec::new();
    for (timing, records, arrays) in parts {
        let [a, b] = timing.items;
        states[a * v..b * v].copy_from_slice(&arrays[0]);
        for r in records {
            let id = r.id as usize;
            results[id] = Some(r);
        }
        timings.push(timing);
    }
    Ok(Some(timings))
}

/// Runs by z-slabs: sends this rank's planes of every item to rank 0; there, puts every rank's
/// planes in place (the records are the same on every rank: failures are agreed on each step).
fn gather_slabs(
    ranks: &Ranks,
    timing: RankTiming,
    states: &mut [f32],
    plane_cells: u32,
    s: usize,
) -> anyhow::Result<Option<Vec<RankTiming>>> {
    let pv = plane_cells as usize * s;
    let per_item = states.len() / timing.items[1].max(1);
    let range = |t: &RankTiming| {
        let [z0, z1] = t.planes.expect("a slab rank's timing names its planes");
        z0 as usize * pv..z1 as usize * pv
    };
    let own: Vec<f32> = (states.chunks(per_item))
        .flat_map(|item| item[range(&timing)].iter().copied())
        .collect();
    let Some(parts) = by_items::gather(ranks, timing, (), &[&own])? else {
        return Ok(None);
    };
    let mut timings = Vec::new();
    for (timing, (), arrays) in parts {
        let r = range(&timing);
        for (item, slab) in states.chunks_mut(per_item).zip(arrays[0].chunks(r.len())) {
            item[r.clone()].copy_from_slice(slab);
        }
        timings.push(timing);
    }
    Ok(Some(timings))
}

/// `--channel` and `--slice-z` name a channel and a plane that exist.
fn check_picture_args(args: &RunArgs, state_size: u32, depth: u32) -> anyhow::Result<()> {
    if args.channel >= state_size {
        let c = args.channel;
        bail!("--channel {c} is not a state channel (state_size is {state_size})");
    }
    if let Some(z) = args.slice_z.filter(|&z| z >= depth) {
        bail!("--slice-z {z} is outside the lattice (D = {depth})");
    }
    Ok(())
}

/// The checkpoint and every item's states: read or seeded, or those of `--resume DIR`.
fn start_or_resume(
    args: &RunArgs,
    sim: &Simulation,
    moe: &MoeConfig,
    shape: [u64; 3],
) -> anyhow::Result<(Checkpoint, Vec<f32>)> {
    let [items, n, s] = shape.map(|v| v as usize);
    let header = Header::new(
        "moe",
        sim.loaded(),
        args.weights_origin(),
        moe.steps,
        args.layout,
    );
    if args.resume.is_some() {
        let dir = &args.checkpoint_home();
        let (ck, saved) = Checkpoint::load(dir, &header, shape)?;
        let finished = ck.done.iter().filter(|&&d| d == moe.steps).count();
        tracing::info!(
            "resuming from {}: {finished} of {items} item(s) finished",
            dir.display()
        );
        return Ok((ck, saved));
    }
    let states = match &args.init_states {
        Some(p) => {
            let what = "[batch.items, cells, state_size]";
            read_items(p, &[n as u64, s as u64], items, args.order(), what)?
        }
        None => {
            let seed = sim.config().seed;
            (0..items)
                .flat_map(|b| initial_states(seed, b as u64, n, s, moe.init_scale))
                .collect()
        }
    };
    Ok((Checkpoint::new(header, items), states))
}

/// Unfinished items, the ones in flight in the checkpoint first (they share a step count).
fn run_order(done: &[u32], steps: u32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..done.len())
        .filter(|&b| done[b] > 0 && done[b] < steps)
        .collect();
    order.extend((0..done.len()).filter(|&b| done[b] == 0));
    order
}

fn print_moe_summary(args: &RunArgs, sim: &Simulation, per_item: &[ItemRecord], st: &Stats) {
    let failed = per_item.iter().filter(|r| !r.ok).count();
    let Model::Moe(model) = sim.model() else {
        return;
    };
    let dims = model.cache.dims();
    let title = format!(
        "ran {} ({dims}) on {}",
        sim.loaded().path.display(),
        st.backend
    );
    let ok = per_item.len() - failed;
    print_summary(
        &title,
        &[
            (
                "items",
                format!("{ok} ok, {failed} failed, in {}", batches_line(st)),
            ),
            ("steps", format!("{} per item", model.cfg.steps)),
            (
                "time",
                format!(
                    "{:.2} s (mean step {:.1} ms, max {:.1} ms)",
                    st.total_s, st.mean_step_ms, st.max_step_ms
                ),
            ),
            (
                "throughput",
                format!(
                    "{:.0} cell-updates/s, {:.2} items/s",
                    st.work_per_s(),
                    st.items_per_s
                ),
            ),
            ("per item", per_item_line(st)),
            ("peak memory", peak_line(st.peak_host_memory_bytes)),
            (
                "outputs",
                format!(
                    "{} (states.npy, states.png, states.vtk, metrics.json, weights.safetensors)",
                    args.out.display()
                ),
            ),
        ],
    );
}

/// Exit status 2 naming the failed items, once every output is written.
fn fail_if_any_failed(per_item: &[ItemRecord]) -> anyhow::Result<()> {
    let failed: Vec<String> = per_item
        .iter()
        .filter(|r| !r.ok)
        .map(|r| format!("item {}: {}", r.id, r.error.as_deref().unwrap_or("failed")))
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} item(s) failed ({}); the others completed and every output was written. \
             Lower init_scale, check the weights, or try combine: Replace",
            failed.len(),
            per_item.len(),
            failed.join("; ")
        );
    }
    Ok(())
}

/// What `lattice run` does while a MoE run goes: the progress bar or log lines, and the
/// checkpoint (every item's states and step count) kept current and saved every N steps.
struct Watch<'a> {
    progress: Progress,
    /// Item index of each submitted position.
    order: &'a [usize],
    ck: Checkpoint,
    states: &'a mut [f32],
    cell_values: usize,
    shape: [u64; 3],
    steps: u32,
    every: u32,
    out: &'a Path,
}

impl Watch<'_> {
    /// Takes in item `b`'s states after `step` steps and its first error so far.
    fn take(&mut self, b: usize, step: u32, states: &[f32], error: Option<&ItemError>) {
        let v = self.cell_values;
        self.states[b * v..(b + 1) * v].copy_from_slice(states);
        self.ck.done[b] = step;
        if self.ck.errors[b].is_none() {
            self.ck.errors[b] = error.map(ToString::to_string);
        }
    }
}

impl Observer for Watch<'_> {
    fn step(&mut self, e: &StepEvent<'_>) -> Result<(), ObserverError> {
        let (a, b) = (self.order[e.items.start], self.order[e.items.end - 1] + 1);
        self.progress.step(e.units, e.step, e.steps, || {
            format!(
                "batch {} (items {a}..{b}), step {}/{}: {:.1} ms",
                e.batch, e.step, e.steps, e.ms
            )
        });
        Ok(())
    }

    fn snapshot_every(&self) -> u32 {
        self.every
    }

    fn snapshot(&mut self, sn: &Snapshot<'_>) -> Result<(), ObserverError> {
        let v = self.cell_values;
        for (k, pos) in sn.items.clone().enumerate() {
            let b = self.order[pos];
            self.take(
                b,
                sn.step,
                &sn.states[k * v..(k + 1) * v],
                sn.errors[k].as_ref(),
            );
        }
        self.ck.save(self.out, self.shape, self.states)?;
        let (a, b) = (self.order[sn.items.start], self.order[sn.items.end - 1] + 1);
        tracing::info!("checkpoint at step {} of items {a}..{b}", sn.step);
        if let Some(why) = crate::test_hooks::stop_after_checkpoint() {
            return Err(format!(
                "stopped after the checkpoint at step {}, {why}; continue with --resume {}",
                sn.step,
                self.out.display()
            )
            .into());
        }
        Ok(())
    }

    fn batch_done(&mut self, d: &BatchDone<'_>) -> Result<(), ObserverError> {
        for r in d.results {
            let b = r.id as usize;
            self.take(b, self.steps, r.output.states(), r.error.as_ref());
            let mut record = r.record();
            // An error found before a resume stays the item's error.
            record.error = self.ck.errors[b].clone();
            record.ok = record.error.is_none();
            self.ck.results[b] = Some(record);
        }
        Ok(())
    }
}

/// `states.png` (item 0, one z-slice of one channel) and `states.vtk` (item 0, that channel and
/// the state norm, every cell); returns the slice and channel drawn.
fn pictures(
    args: &RunArgs,
    steps: u32,
    dims: lattice_core::Dims,
    s: usize,
    item0: &[f32],
) -> anyhow::Result<(u32, u32)> {
    let c = args.channel as usize;
    let z = args.slice_z.unwrap_or(dims.d() / 2);
    let (w, h) = (dims.w() as usize, dims.h() as usize);
    let plane = w * h;
    let slice: Vec<f32> = (0..plane)
        .map(|k| item0[(z as usize * plane + k) * s + c])
        .collect();
    let name = config_name(&args.config);
    figures::write(
        &args.out.join("states.png"),
        &Figure {
            title: format!("{name}: states after {steps} step(s)"),
            panels: vec![Panel {
                caption: format!("item 0, z = {z}, channel {c}"),
                values: &slice,
                w,
                h,
            }],
            value_label: format!("channel {c}"),
            no_value: "non-finite",
        },
    )?;
    let channel: Vec<f32> = item0.chunks(s).map(|v| v[c]).collect();
    let norm: Vec<f32> = item0
        .chunks(s)
        .map(|v| v.iter().map(|x| x * x).sum::<f32>().sqrt())
        .collect();
    write_vtk(
        &args.out.join("states.vtk"),
        dims.as_array(),
        &[(&format!("channel_{c}"), &channel), ("state_norm", &norm)],
        "lattice MoE states, item 0",
    )?;
    Ok((z, args.channel))
}
