// Embeds the rule pack (`rules/<area>/<id>.yaml`) in the binary, so `kubetrail detect`
// and the demo work from any directory with no files beside them.
use std::fmt::Write;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    if let Ok(areas) = std::fs::read_dir(&root) {
        for area in areas.flatten() {
            let path = area.path();
            if !path.is_dir() {
                continue;
            }
            println!("cargo:rerun-if-changed={}", path.display());
            for rule in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                let p = rule.path();
                if p.extension().is_some_and(|e| e == "yaml") {
                    files.push(p);
                }
            }
        }
    }
    files.sort();
    let mut out = String::from("/// `(path under rules/, text)` of every rule file.\npub static EMBEDDED: &[(&str, &str)] = &[\n");
    for p in &files {
        let rel = p
            .strip_prefix(&root)
            .expect("under rules/")
            .to_string_lossy()
            .replace('\\', "/");
        writeln!(
            out,
            "    ({rel:?}, include_str!({:?})),",
            p.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_rules.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}
