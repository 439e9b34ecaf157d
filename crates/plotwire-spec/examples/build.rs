//! Prints the DocJson a spec builds: `cargo run -p plotwire-spec --example build -- spec.json`.
//! With several files, prints one JSON object mapping each path to its DocJson.

use std::process::ExitCode;

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: build SPEC.json [SPEC.json ...]");
        return ExitCode::from(2);
    }
    let mut out = serde_json::Map::new();
    for path in &paths {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::from(1);
            }
        };
        match plotwire_spec::build_json(&text) {
            Ok(built) => {
                out.insert(path.clone(), built.doc);
            }
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let json = if paths.len() == 1 {
        out.into_iter().next().map(|(_, v)| v).unwrap_or_default()
    } else {
        serde_json::Value::Object(out)
    };
    println!("{json}");
    ExitCode::SUCCESS
}
