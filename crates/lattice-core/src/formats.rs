//! What every file the engine writes for itself says about its layout: the format version
//! and the cell-index scheme of its arrays. A file that names another is refused with a
//! message rather than misread; a weights file without them (a PyTorch `state_dict` saved
//! with safetensors) is taken as it is, since its tensors are checked by name and shape.

use std::collections::HashMap;

/// Version of the engine's file formats (weights metadata, checkpoints, prepared batches).
pub const FORMAT_VERSION: u32 = 1;
/// How cells are numbered in every per-cell array: x fastest, then y, then z.
pub const CELL_INDEX: &str = "x + y*W + z*W*H";

/// The metadata key in `weights.safetensors`. One key, not two: safetensors writes its metadata
/// map in hash order, and a single entry keeps the file's bytes the same run to run.
pub const METADATA_KEY: &str = "lattice.format";

/// The value of [`METADATA_KEY`]: "version 1; cells x + y*W + z*W*H".
pub fn metadata_value(version: &str, cells: &str) -> String {
    format!("version {version}; cells {cells}")
}

/// The metadata a weights file is written with.
pub fn metadata() -> HashMap<String, String> {
    let value = metadata_value(&FORMAT_VERSION.to_string(), CELL_INDEX);
    HashMap::from([(METADATA_KEY.to_string(), value)])
}

/// Why a file's recorded layout is not this engine's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatMismatch {
    #[error(
        "it was written in lattice format version {found}; this engine reads version {FORMAT_VERSION}: \
         use the lattice release that wrote it, or regenerate it with this one"
    )]
    Version { found: String },
    #[error(
        "its cells are numbered {found}; this engine numbers them {CELL_INDEX}: \
         reorder the arrays or regenerate the file"
    )]
    CellIndex { found: String },
}

/// Checks recorded format facts; what is not recorded is not checked.
pub fn check(version: Option<&str>, cell_index: Option<&str>) -> Result<(), FormatMismatch> {
    if let Some(v) = version
        && v != FORMAT_VERSION.to_string()
    {
        return Err(FormatMismatch::Version { found: v.into() });
    }
    if let Some(c) = cell_index
        && c != CELL_INDEX
    {
        return Err(FormatMismatch::CellIndex { found: c.into() });
    }
    Ok(())
}

/// [`check`] on a safetensors metadata map.
pub fn check_metadata(meta: Option<&HashMap<String, String>>) -> Result<(), FormatMismatch> {
    let Some(value) = meta.and_then(|m| m.get(METADATA_KEY)) else {
        return Ok(());
    };
    let parts = value
        .split_once("; ")
        .and_then(|(v, c)| Some((v.strip_prefix("version ")?, c.strip_prefix("cells ")?)));
    match parts {
        Some((version, cells)) => check(Some(version), Some(cells)),
        None => Err(FormatMismatch::Version {
            found: format!("unreadable ({value:?})"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_facts_pass_others_are_named_and_absent_ones_are_not_checked() {
        assert_eq!(check_metadata(Some(&metadata())), Ok(()));
        assert_eq!(metadata()[METADATA_KEY], "version 1; cells x + y*W + z*W*H");
        assert_eq!(
            metadata().len(),
            1,
            "one entry keeps the file's bytes stable"
        );
        assert_eq!(check_metadata(None), Ok(()));
        let e = check(Some("2"), None).unwrap_err().to_string();
        assert!(
            e.contains("version 2") && e.contains("reads version 1"),
            "{e}"
        );
        let e = check(None, Some("z + y*D + x*D*H"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("z + y*D + x*D*H") && e.contains(CELL_INDEX),
            "{e}"
        );
    }
}
