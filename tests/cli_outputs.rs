//! What `lattice run` and the other commands write, read back the way a user would: the PNG
//! decoded, the VTK parsed, `events.jsonl` checked field by field against the documented schema
//! and against the run's own totals, `--slice-z`/`--channel`, `info`, `inspect` and `bench`
//! output, and checkpoints refused for another version, step count or weights file.

use std::collections::BTreeSet;
use std::path::Path;

mod common;
use common::{read_json as json, read_npy as npy, write_npy};

const MOE: &str = "(seed: 3, batch: (items: 2), simulation: Moe((lattice: (dims: (6, 5, 4), \
                   radius_ratio: 0.5), steps: 2)))";
const FLOWS: &str = "(seed: 5, batch: (items: 2), simulation: Flows((dims: (7, 6, 8), \
    embedding_dim: 16, carrier: (hidden: 16, layers: 2), neuron: (hidden: 8, output: 12), \
    displacement_scale: 40.0, noise: 0.05, spawn: Some((threshold: 0.15)), \
    trace: Some((capacity: 1000000)))))";

fn lattice(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let ran = common::lattice_in(dir, args, &[]);
    (ran.code, ran.stdout, ran.stderr)
}

/// A legacy-VTK structured-points file: its dimensions, point count and fields.
struct Vtk {
    dims: [usize; 3],
    points: usize,
    fields: Vec<(String, Vec<f32>)>,
}

fn vtk(path: &Path) -> Vtk {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("# vtk DataFile Version 3.0"));
    lines.next();
    assert_eq!(lines.next(), Some("ASCII"));
    assert_eq!(lines.next(), Some("DATASET STRUCTURED_POINTS"));
    let nums = |l: &str, key: &str| -> Vec<usize> {
        let rest = l
            .strip_prefix(key)
            .unwrap_or_else(|| panic!("{key} expected, got {l}"));
        rest.split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let d = nums(lines.next().unwrap(), "DIMENSIONS ");
    assert_eq!(lines.next(), Some("ORIGIN 0 0 0"));
    assert_eq!(lines.next(), Some("SPACING 1 1 1"));
    let points = nums(lines.next().unwrap(), "POINT_DATA ")[0];
    let mut fields = Vec::new();
    while let Some(l) = lines.next() {
        let name = l
            .strip_prefix("SCALARS ")
            .unwrap()
            .strip_suffix(" float 1")
            .unwrap();
        assert_eq!(lines.next(), Some("LOOKUP_TABLE default"));
        let mut values = Vec::new();
        while values.len() < points {
            values.extend(
                lines
                    .next()
                    .unwrap()
                    .split(' ')
                    .map(|v| v.parse::<f32>().unwrap()),
            );
        }
        assert_eq!(values.len(), points, "{name}");
        fields.push((name.to_string(), values));
    }
    Vtk {
        dims: [d[0], d[1], d[2]],
        points,
        fields,
    }
}

/// The colour of a "no value" cell in the figures (lattice-cli figures::NO_VALUE).
const NO_VALUE: [u8; 3] = [200, 200, 200];

/// What a figure shows, read from its pixels.
struct Png {
    size: (u32, u32),
    distinct: usize,
    /// Dark (text) pixels in the title band at the top.
    title_ink: usize,
    /// Pixels of the "no value" grey (a few come from anti-aliased text).
    no_value_px: usize,
}

fn png(path: &Path) -> Png {
    let img = image::open(path).unwrap().to_rgb8();
    let distinct: BTreeSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    let title_ink = (img.enumerate_pixels())
        .filter(|(_, y, p)| *y < 30 && p.0.iter().all(|&c| c < 100))
        .count();
    Png {
        size: img.dimensions(),
        distinct: distinct.len(),
        title_ink,
        no_value_px: img.pixels().filter(|p| p.0 == NO_VALUE).count(),
    }
}

#[test]
fn a_moe_run_writes_the_picture_and_grid_its_options_ask_for() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("moe.ron"), MOE).unwrap();
    let args = [
        "run",
        "moe.ron",
        "--backend",
        "cpu",
        "--slice-z",
        "1",
        "--channel",
        "3",
        "--out",
        "o",
    ];
    let (code, _, err) = lattice(d, &args);
    assert_eq!(code, 0, "{err}");
    let states = npy(&d.join("o/states.npy"));
    let (n, s) = (6 * 5 * 4, 24);
    assert_eq!(states.len(), 2 * n * s);
    // states.png: a titled figure of z = 1, channel 3 of item 0 (square cells, the plot's
    // longer side 360 px, axes and a colour bar around it), not constant, nothing missing.
    let fig = png(&d.join("o/states.png"));
    assert_eq!(fig.size, (558, 432));
    assert!(fig.distinct > 10, "{} colours", fig.distinct);
    assert!(fig.title_ink > 50, "a title is drawn");
    assert!(fig.no_value_px < 100, "{} grey pixels", fig.no_value_px);
    // states.vtk: the whole item 0, the chosen channel and the norm, equal to states.npy.
    let g = vtk(&d.join("o/states.vtk"));
    assert_eq!((g.dims, g.points), ([6, 5, 4], n));
    let names: Vec<&str> = g.fields.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, ["channel_3", "state_norm"]);
    for cell in 0..n {
        let x = &states[cell * s..(cell + 1) * s];
        assert_eq!(g.fields[0].1[cell], x[3], "cell {cell}: channel 3");
        let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
        approx::assert_relative_eq!(g.fields[1].1[cell], norm, max_relative = 1e-6);
    }
    let m = json(&d.join("o/metrics.json"));
    assert_eq!(m["outputs"]["png_shows"], "item 0, z = 1, channel 3");
    // Options outside the lattice are refused before anything runs.
    for (flag, value, says) in [
        ("--slice-z", "4", "outside the lattice"),
        ("--channel", "24", "not a state channel"),
    ] {
        let (code, _, err) = lattice(
            d,
            &[
                "run",
                "moe.ron",
                "--backend",
                "cpu",
                flag,
                value,
                "--out",
                "bad",
            ],
        );
        assert_eq!(code, 2);
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn a_flows_run_writes_pictures_and_an_event_trace_matching_its_totals() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("flows.ron"), FLOWS).unwrap();
    let (code, _, err) = lattice(d, &["run", "flows.ron", "--backend", "cpu", "--out", "o"]);
    assert_eq!(code, 0, "{err}");
    let surface = npy(&d.join("o/surface.npy"));
    let (w, h) = (7, 6);
    // surface.png: item 0's front and back planes side by side, titled, not constant; the
    // "no value" grey where no flow landed (those cells hold the empty softmax's 0).
    let fig = png(&d.join("o/surface.png"));
    assert_eq!(fig.size, (2 * 428 + 130, 441));
    assert!(fig.distinct > 10, "{} colours", fig.distinct);
    assert!(fig.title_ink > 50, "a title is drawn");
    let empty_cells = surface[..2 * w * h].iter().filter(|&&v| v == 0.0).count();
    assert!(empty_cells > 0, "this case leaves cells empty");
    // Cells are 360 / 7 ≈ 51 px wide: every empty one paints thousands of grey pixels.
    assert!(
        fig.no_value_px > 2000 * empty_cells,
        "{} grey pixels",
        fig.no_value_px
    );
    // surface.vtk: W×H×2, the energy of item 0's two planes as in surface.npy.
    let g = vtk(&d.join("o/surface.vtk"));
    assert_eq!((g.dims, g.points), ([7, 6, 2], 2 * 7 * 6));
    assert_eq!(g.fields.len(), 1);
    assert_eq!(g.fields[0].0, "energy");
    assert_eq!(g.fields[0].1, surface[..2 * 7 * 6]);
    // events.jsonl: every line one of the documented shapes, and the counts the totals.
    let m = json(&d.join("o/metrics.json"));
    assert_eq!(m["trace_overwritten"], 0);
    let text = std::fs::read_to_string(d.join("o/events.jsonl")).unwrap();
    let mut counts = [0u64; 3];
    for line in text.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        let obj = e.as_object().unwrap();
        let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
        let step = e["step"].as_u64().unwrap();
        assert!(step < 4, "{line}");
        assert!(e["item"].as_u64().unwrap() < 2, "{line}");
        let flow = e["flow"].as_u64().unwrap();
        match e["event"].as_str().unwrap() {
            "spawn" => {
                assert_eq!(
                    keys,
                    BTreeSet::from(["event", "step", "item", "flow", "parent"]),
                    "{line}"
                );
                assert!(
                    flow >= (w * h) as u64,
                    "children are numbered after the roots: {line}"
                );
                assert!(e["parent"].as_u64().unwrap() < flow, "{line}");
                counts[0] += 1;
            }
            "reflect" => {
                assert_eq!(
                    keys,
                    BTreeSet::from(["event", "step", "item", "flow"]),
                    "{line}"
                );
                counts[1] += 1;
            }
            "terminate" => {
                assert_eq!(
                    keys,
                    BTreeSet::from(["event", "step", "item", "flow", "plane"]),
                    "{line}"
                );
                assert!(
                    ["front", "back"].contains(&e["plane"].as_str().unwrap()),
                    "{line}"
                );
                counts[2] += 1;
            }
            other => panic!("unknown event {other}: {line}"),
        }
    }
    let t = &m["totals"];
    let completed = t["completed_front"].as_u64().unwrap() + t["completed_back"].as_u64().unwrap();
    let want = [
        t["spawned"].as_u64().unwrap(),
        t["reflected"].as_u64().unwrap(),
        completed,
    ];
    assert_eq!(
        counts, want,
        "spawn, reflect and terminate events vs metrics totals"
    );
    assert!(
        counts.iter().all(|&c| c > 0),
        "every event kind occurs: {counts:?}"
    );
}

#[test]
fn info_inspect_and_bench_print_what_they_document() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("moe.ron"), MOE).unwrap();
    let (code, out, err) = lattice(d, &["info", "--json"]);
    assert_eq!(code, 0, "{err}");
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        info["adapters"].is_array() && info["cpu_threads"].as_u64().unwrap() >= 1,
        "{info}"
    );
    assert!(
        info["chosen"].is_object() || info["why_none"].is_string(),
        "{info}"
    );
    let (code, out, err) = lattice(
        d,
        &[
            "inspect",
            "neighbors",
            "moe.ron",
            "--cell",
            "0",
            "0",
            "0",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let nb: serde_json::Value = serde_json::from_str(&out).unwrap();
    let text = nb.to_string();
    for word in ["local", "functional", "distant"] {
        assert!(text.contains(word), "{word}: {text}");
    }
    let (code, _, err) = lattice(
        d,
        &["inspect", "neighbors", "moe.ron", "--cell", "6", "0", "0"],
    );
    assert_eq!(code, 2, "a cell outside the lattice is refused: {err}");
    let (code, out, err) = lattice(
        d,
        &["bench", "neighbors", "--only", "15^3", "--backend", "cpu"],
    );
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = report["results"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report}");
    assert_eq!(rows[0]["case"], "neighbors/stencil+validate/15^3");
    assert!(rows[0]["ms"].as_f64().unwrap() > 0.0 && rows[0]["ok"] == true);
    assert!(err.contains("ms/step"), "the table on stderr: {err}");
}

#[test]
fn a_checkpoint_is_refused_for_another_step_count_or_weights_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("moe.ron"),
        MOE.replace("items: 2)", "items: 2, max_batch_size: Fixed(1))"),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut a = vec![
            "run",
            "moe.ron",
            "--backend",
            "cpu",
            "--checkpoint-every",
            "1",
        ];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let cut_args = run(&["--out", "cut"]);
    let cut_args: Vec<&str> = cut_args.iter().map(String::as_str).collect();
    let cut = common::lattice_in(d, &cut_args, &[("LATTICE_STOP_AFTER_CHECKPOINT", "1")]);
    assert_eq!(cut.code, 2, "{}", cut.stderr);
    let as_refs = |v: &[String]| v.iter().map(String::as_str).collect::<Vec<_>>().join(" ");
    let resume = |extra: &[&str], says: &str| {
        let args = run(&[&["--resume", "cut"], extra].concat());
        let (code, _, err) = lattice(d, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 2, "{}: {err}", as_refs(&args));
        assert!(err.contains(says), "{err}");
    };
    resume(&["--steps", "5"], "step");
    // A weights file the interrupted run did not use.
    let (code, _, err) = lattice(d, &["run", "moe.ron", "--backend", "cpu", "--out", "w"]);
    assert_eq!(code, 0, "{err}");
    resume(
        &["--weights", "w/weights.safetensors"],
        "pass the same --weights",
    );
    // The version is checked too: a checkpoint whose header names another one.
    let header = d.join("cut/checkpoint/checkpoint.json");
    let text = std::fs::read_to_string(&header).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let old = v["version"].as_str().map(str::to_owned).unwrap_or_default();
    assert!(!old.is_empty(), "the header records the version: {text}");
    std::fs::write(&header, text.replace(&format!("\"{old}\""), "\"0.0.1\"")).unwrap();
    resume(&[], "written by lattice 0.0.1");
    // So are the format version and the cell numbering it records.
    for (key, value, says) in [
        ("format_version", "\"9\"", "format version 9"),
        (
            "cell_index",
            "\"z + y*D + x*D*H\"",
            "numbered z + y*D + x*D*H",
        ),
        ("format_version", "null", "version (none recorded)"),
    ] {
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v[key] = serde_json::from_str(value).unwrap();
        std::fs::write(&header, v.to_string()).unwrap();
        resume(&[], says);
    }
}

#[test]
fn input_order_quiet_log_every_and_projection_do_what_the_readme_says() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let four = MOE.replace("items: 2", "items: 4");
    std::fs::write(d.join("moe.ron"), &four).unwrap();
    // --init-states DIR: a.npy holds items a0, a1 and b.npy b0, b1 (each cell's states = a
    // constant per item); in-order reads a0 a1 b0 b1, round-robin a0 b0 a1 b1.
    let (n, s) = (6 * 5 * 4usize, 24usize);
    std::fs::create_dir(d.join("in")).unwrap();
    for (file, base) in [("a.npy", 0.1f32), ("b.npy", 0.3f32)] {
        let values = (0..2 * n * s).map(move |k| base + (k / (n * s)) as f32 * 0.1);
        write_npy(&d.join("in").join(file), &[2, n as u64, s as u64], values);
    }
    let mut outs = Vec::new();
    for order in ["in-order", "round-robin"] {
        let args = [
            "run",
            "moe.ron",
            "--backend",
            "cpu",
            "--init-states",
            "in",
            "--input-order",
            order,
            "--out",
            order,
        ];
        let (code, _, err) = lattice(d, &args);
        assert_eq!(code, 0, "{err}");
        outs.push(npy(&d.join(order).join("states.npy")));
    }
    let item = |v: &Vec<f32>, k: usize| v[k * n * s..(k + 1) * n * s].to_vec();
    for (in_order, round_robin) in [(0, 0), (2, 1), (1, 2), (3, 3)] {
        assert_eq!(item(&outs[0], in_order), item(&outs[1], round_robin));
    }
    assert_ne!(item(&outs[0], 1), item(&outs[0], 2));
    // --quiet: nothing on stderr; --log-every 1: a line per step of each batch.
    let (code, out, err) = lattice(
        d,
        &[
            "run",
            "moe.ron",
            "--backend",
            "cpu",
            "--quiet",
            "--out",
            "q",
        ],
    );
    assert_eq!(code, 0);
    assert!(err.trim().is_empty(), "{err}");
    assert!(
        out.contains("ran moe.ron"),
        "the summary still prints: {out}"
    );
    let (code, _, err) = lattice(
        d,
        &[
            "run",
            "moe.ron",
            "--backend",
            "cpu",
            "--log-every",
            "1",
            "--out",
            "l",
        ],
    );
    assert_eq!(code, 0);
    let lines = err
        .lines()
        .filter(|l| l.contains("step 1/2") || l.contains("step 2/2"))
        .count();
    assert_eq!(lines, 2, "one batch of 4, two steps: {err}");
    // unfinished: Project puts the flows still moving at the end on the nearer plane.
    let flows = FLOWS.replace(
        "trace: Some((capacity: 1000000))",
        "max_steps: Some(1), unfinished: Project",
    );
    std::fs::write(d.join("p.ron"), flows).unwrap();
    let (code, _, err) = lattice(d, &["run", "p.ron", "--backend", "cpu", "--out", "p"]);
    assert_eq!(code, 0, "{err}");
    let t = &json(&d.join("p/metrics.json"))["totals"];
    assert!(t["unfinished"].as_u64().unwrap() > 0);
    assert_eq!(t["projected"], t["unfinished"]);
    assert!(npy(&d.join("p/surface.npy")).iter().any(|&v| v != 0.0));
}

#[test]
fn validate_json_and_backend_auto_say_what_the_readme_says() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("moe.ron"), MOE).unwrap();
    let (code, out, err) = lattice(d, &["validate", "moe.ron", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["cells"], 120);
    assert_eq!(v["dims"], serde_json::json!([6, 5, 4]));
    assert!(v["neighbors"]["total"]["min"].as_u64().unwrap() > 0, "{v}");
    // --backend auto: a hardware adapter is used; a software one (lavapipe) or none is not,
    // and one line says why.
    let (code, _, err) = lattice(d, &["run", "moe.ron", "--out", "auto"]);
    assert_eq!(code, 0, "{err}");
    let m = json(&d.join("auto/metrics.json"));
    let backend = m["backend"].as_str().unwrap();
    match lattice::gpu::test_context() {
        Some(ctx) if ctx.adapter.device_type != "Cpu" => {
            assert!(backend.starts_with("gpu"), "{backend}")
        }
        Some(_) => {
            assert!(backend.starts_with("cpu"), "{backend}");
            assert!(err.contains("software GPU adapter"), "{err}");
        }
        None => {
            assert!(backend.starts_with("cpu"), "{backend}");
            assert!(err.contains("no usable GPU"), "{err}");
        }
    }
}

#[test]
fn flow_weights_over_the_copy_limit_are_not_written_and_the_log_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("flows.ron"), FLOWS).unwrap();
    // The 512 MiB limit, lowered so that this small network is over it.
    let o = common::lattice_in(
        d,
        &["run", "flows.ron", "--backend", "cpu", "--out", "o"],
        &[("LATTICE_MAX_WEIGHTS_COPY_BYTES", "1000")],
    );
    let err = &o.stderr;
    assert_eq!(o.code, 0, "{err}");
    assert!(err.contains("not copied to the output folder"), "{err}");
    assert!(!d.join("o/weights.safetensors").exists());
    let m = json(&d.join("o/metrics.json"));
    assert!(m["outputs"].get("weights").is_none(), "{m}");
    assert!(d.join("o/surface.npy").exists());
}

/// `lattice run ... 2> log.txt`: a log file holds plain text, no colour escapes, and
/// `NO_COLOR` is honoured the same way.
#[test]
fn a_log_written_to_a_file_has_no_escape_bytes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("moe.ron"), MOE).unwrap();
    for no_color in [None, Some("1")] {
        let log = dir.path().join("log.txt");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lattice"));
        cmd.current_dir(dir.path())
            .args(["run", "moe.ron", "--backend", "cpu", "--out", "out"])
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        assert!(cmd.status().unwrap().success());
        let bytes = std::fs::read(&log).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("INFO"), "the log has lines to check: {text}");
        assert!(!bytes.contains(&0x1b), "escape byte in the log: {text:?}");
    }
}
