//! What a stranger with only this repository relies on: every crate builds from its own folder
//! (no `include_str!` reaching outside it), lattice-gpu's files stay small enough to read, the
//! bench presets are the shipped configs, the docs cite only what is in the repository, and
//! docs/architecture.md names modules, files and types that exist.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` (recursively) whose name ends in one of `exts`.
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                if !["target", ".git", "models", "__pycache__"].contains(&name.as_str()) {
                    stack.push(p);
                }
            } else if exts.iter().any(|x| name.ends_with(x)) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn no_include_reaches_outside_its_crate() {
    let crates = root().join("crates");
    for krate in std::fs::read_dir(&crates).unwrap().flatten() {
        let home = krate.path().canonicalize().unwrap();
        for file in files(&krate.path().join("src"), &[".rs"]) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (at, _) in text
                .match_indices("include_str!(")
                .chain(text.match_indices("include_bytes!("))
            {
                let rest = &text[at..];
                let Some(open) = rest.find('"') else { continue };
                let lit = &rest[open + 1..];
                let lit = &lit[..lit.find('"').unwrap()];
                let target = file.parent().unwrap().join(lit);
                let dir = target.parent().unwrap().canonicalize().unwrap();
                assert!(
                    dir.starts_with(&home),
                    "{} includes {lit}, outside its crate",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn lattice_gpu_files_stay_under_400_lines() {
    for file in files(&root().join("crates/lattice-gpu/src"), &[".rs"]) {
        let lines = std::fs::read_to_string(&file).unwrap().lines().count();
        assert!(lines <= 400, "{} has {lines} lines", file.display());
    }
}

#[test]
fn the_bench_presets_are_the_shipped_configs() {
    for name in ["debug", "experiment", "flows_debug", "flows_experiment"] {
        let preset = root().join(format!("crates/lattice-cli/presets/{name}.ron"));
        let config = root().join(format!("configs/{name}.ron"));
        assert_eq!(
            std::fs::read_to_string(&preset).unwrap(),
            std::fs::read_to_string(&config).unwrap(),
            "{} differs from {}; copy the config over the preset",
            preset.display(),
            config.display()
        );
    }
}

#[test]
fn the_docs_and_code_cite_only_what_is_in_the_repository() {
    // Spelled in pieces so this file does not match itself.
    let outside = [
        format!("{}/{}", "shared", "spec"),
        format!("../{}", "shared"),
        format!("{}.md", "engine"),
        format!("{}-{}.md", "reference", "system"),
        format!("{}.md", "h100"),
    ];
    let mut texts = vec![root().join("README.md")];
    for dir in [
        "docs", "crates", "src", "tests", "configs", "python", "scripts", "benches", "examples",
    ] {
        texts.extend(files(
            &root().join(dir),
            &[".rs", ".md", ".ron", ".py", ".pyi", ".sh", ".wgsl", ".toml"],
        ));
    }
    for file in texts {
        let text = std::fs::read_to_string(&file).unwrap();
        for o in &outside {
            assert!(!text.contains(o.as_str()), "{} cites {o}", file.display());
        }
    }
}

/// Whether `name` is declared somewhere in the sources (a type, trait, function, module,
/// constant, field, or enum variant).
fn declared(sources: &str, name: &str) -> bool {
    [
        "struct ", "enum ", "trait ", "fn ", "mod ", "type ", "const ", "static ",
    ]
    .iter()
    .any(|kw| sources.contains(&format!("{kw}{name}")))
        || sources.contains(&format!("    {name}("))
        || sources.contains(&format!("    {name},"))
        || sources.contains(&format!("    {name} {{"))
        || sources.contains(&format!("pub {name}: "))
}

#[test]
fn architecture_md_names_things_that_exist() {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let all: Vec<PathBuf> = files(
        root(),
        &[".rs", ".wgsl", ".toml", ".ron", ".py", ".md", ".sh"],
    );
    let sources: String = all
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let paths: Vec<String> = all
        .iter()
        .map(|p| {
            p.strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    let mut checked = 0;
    for quoted in doc.split('`').skip(1).step_by(2) {
        let item = quoted.trim_end_matches("()");
        if item.contains(' ') || item.is_empty() {
            continue;
        }
        if let Some(file) = item
            .split("::")
            .next()
            .filter(|f| f.ends_with(".rs") || f.ends_with(".wgsl"))
        {
            // A file, maybe with `::item` after it: some file in the tree ends with it.
            assert!(
                paths.iter().any(|p| p.ends_with(file)),
                "docs/architecture.md names {file}, which no file is"
            );
            checked += 1;
        } else if item.contains("::") {
            let last = item.rsplit("::").next().unwrap();
            if last.chars().next().is_some_and(|c| c.is_alphabetic()) {
                assert!(
                    declared(&sources, last),
                    "docs/architecture.md names {item}, and nothing declares {last}"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked > 40,
        "only {checked} names checked: the parser lost them"
    );
}

/// Every kernel of the table names its CPU twin, which exists, and a test that compares the
/// two, which exists and runs that kernel's engine.
#[test]
fn every_kernel_has_a_cpu_twin_and_a_gpu_test() {
    let sources: String = ["crates/lattice-core/src", "crates/lattice-gpu/src"]
        .iter()
        .flat_map(|d| files(&root().join(d), &[".rs"]))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for k in lattice_gpu::shaders::KERNELS {
        assert!(!k.cpu_twin.is_empty(), "{} names no CPU twin", k.name);
        let last = k.cpu_twin.rsplit("::").next().unwrap();
        assert!(
            declared(&sources, last),
            "{}: twin {} is not declared",
            k.name,
            k.cpu_twin
        );
        let test = root().join(k.gpu_test);
        let text = std::fs::read_to_string(&test)
            .unwrap_or_else(|_| panic!("{}: its GPU test {} is missing", k.name, k.gpu_test));
        let engine = [
            "GpuFlows",
            "GpuMoe",
            "GpuNeighbors",
            "LiveDispatch",
            "test_context",
        ];
        assert!(
            engine.iter().any(|e| text.contains(e)),
            "{}: {} runs no GPU engine",
            k.name,
            k.gpu_test
        );
    }
}
