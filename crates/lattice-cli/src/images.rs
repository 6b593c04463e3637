//! Pictures of results a person can open: PNG files (the figures themselves are drawn by the
//! command line) and legacy-VTK structured points for ParaView. Written atomically like every
//! output.

use std::io::Write;
use std::path::Path;

use lattice_core::io::{IoError, write_atomic};

/// An RGB image (`width`×`height`, 3 bytes a pixel, rows top first) as a PNG, atomically.
pub fn write_png(path: &Path, width: u32, height: u32, rgb: Vec<u8>) -> Result<(), IoError> {
    let img = image::RgbImage::from_raw(width, height, rgb)
        .expect("the buffer holds width × height RGB pixels");
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
    fn png_and_vtk_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.png");
        let rgb: Vec<u8> = (0..2 * 3 * 3).map(|k| k as u8 * 10).collect();
        write_png(&p, 3, 2, rgb.clone()).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (3, 2));
        assert_eq!(img.into_raw(), rgb);
        let v = dir.path().join("a.vtk");
        write_vtk(&v, [2, 1, 2], &[("c0", &[1.0, 2.0, 3.0, 4.5])], "t").unwrap();
        let text = std::fs::read_to_string(&v).unwrap();
        assert!(text.contains("DIMENSIONS 2 1 2") && text.contains("3 4.5"));
    }
}
