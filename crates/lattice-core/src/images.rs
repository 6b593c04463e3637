//! Pictures of results a person can open: PNG heatmaps (viridis, scaled to the data's range)
//! and legacy-VTK structured points for ParaView. Written atomically like every output.

use std::io::Write;
use std::path::Path;

use crate::io::{IoError, write_atomic};

/// Viridis control points (matplotlib), at 0, 0.25, 0.5, 0.75, 1.
const VIRIDIS: [[f32; 3]; 5] = [
    [68.0, 1.0, 84.0],
    [59.0, 82.0, 139.0],
    [33.0, 145.0, 140.0],
    [94.0, 201.0, 98.0],
    [253.0, 231.0, 37.0],
];

fn viridis(t: f32) -> [u8; 3] {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * 4.0;
    let i = (x.floor() as usize).min(3);
    let f = x - i as f32;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    [0, 1, 2].map(|c| (a[c] + (b[c] - a[c]) * f).round() as u8)
}

/// A `[rows, cols]` row-major field as a PNG heatmap, row 0 at the top, each value a
/// `scale`×`scale` block; colours span the field's finite min..max (a constant field is dark).
pub fn write_heatmap(
    path: &Path,
    rows: usize,
    cols: usize,
    values: &[f32],
    scale: u32,
) -> Result<(), IoError> {
    assert_eq!(values.len(), rows * cols, "values are [rows, cols]");
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let s = scale.max(1);
    let img = image::RgbImage::from_fn(cols as u32 * s, rows as u32 * s, |x, y| {
        let v = values[(y / s) as usize * cols + (x / s) as usize];
        image::Rgb(viridis((v - lo) / span))
    });
    write_atomic(path, |w| {
        img.write_to(w, image::ImageFormat::Png)
            .map_err(std::io::Error::other)
    })
}

/// Legacy-VTK structured points of a `W×H×D` grid (x fastest) with one or more named scalar
/// fields, for ParaView ("Open", then colour by a field).
pub fn write_vtk(
    path: &Path,
    dims: [u32; 3],
    fields: &[(&str, &[f32])],
    title: &str,
) -> Result<(), IoError> {
    let n: usize = dims.iter().map(|&d| d as usize).product();
    write_atomic(path, |w| {
        writeln!(w, "# vtk DataFile Version 3.0")?;
        writeln!(w, "{}", title.replace('\n', " "))?;
        writeln!(w, "ASCII\nDATASET STRUCTURED_POINTS")?;
        writeln!(w, "DIMENSIONS {} {} {}", dims[0], dims[1], dims[2])?;
        writeln!(w, "ORIGIN 0 0 0\nSPACING 1 1 1\nPOINT_DATA {n}")?;
        for (name, values) in fields {
            assert_eq!(values.len(), n, "field {name} covers the grid");
            writeln!(w, "SCALARS {name} float 1\nLOOKUP_TABLE default")?;
            for row in values.chunks(dims[0] as usize) {
                let line: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
                writeln!(w, "{}", line.join(" "))?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmap_and_vtk_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.png");
        write_heatmap(&p, 2, 3, &[0.0, 1.0, 2.0, 3.0, 4.0, f32::NAN], 4).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (12, 8));
        assert_eq!(img.get_pixel(0, 0).0, [68, 1, 84]);
        assert_eq!(img.get_pixel(4, 4).0, [253, 231, 37]);
        let v = dir.path().join("a.vtk");
        write_vtk(&v, [2, 1, 2], &[("c0", &[1.0, 2.0, 3.0, 4.5])], "t").unwrap();
        let text = std::fs::read_to_string(&v).unwrap();
        assert!(text.contains("DIMENSIONS 2 1 2") && text.contains("3 4.5"));
    }
}
