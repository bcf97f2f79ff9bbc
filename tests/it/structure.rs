//! Guards the layout that keeps the code readable (issue #9): a thin `main.rs`, few
//! files directly in `src/`, no long functions outside tests, and an architecture page
//! that names every stage folder.

use std::path::{Path, PathBuf};

const MAX_FN_LINES: usize = 80;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(name, lines)` of every `fn` before the file's `#[cfg(test)]` module, found by its
/// closing brace at the same indentation (rustfmt's layout).
fn function_lengths(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let sig = body
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("const ")
            .trim_start_matches("unsafe ");
        let Some(rest) = sig.strip_prefix("fn ") else {
            continue;
        };
        if line.trim_end().ends_with(';') {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let close = format!("{indent}}}");
        if let Some(end) = lines[i..].iter().position(|l| l.trim_end() == close) {
            out.push((name, end + 1));
        }
    }
    out
}

#[test]
fn main_is_thin_and_src_has_few_top_level_files() {
    let main = std::fs::read_to_string(src().join("main.rs")).unwrap();
    assert!(
        main.lines().count() <= 60,
        "main.rs has {} lines",
        main.lines().count()
    );
    let top: Vec<_> = std::fs::read_dir(src())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    assert!(
        top.len() <= 8,
        "{} .rs files directly in src/: {top:?}",
        top.len()
    );
}

#[test]
fn no_function_outside_tests_is_longer_than_80_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut long = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (name, n) in function_lengths(&text) {
            if n > MAX_FN_LINES {
                long.push(format!("{}::{name} ({n} lines)", f.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines: {long:?}"
    );
    // The measure itself works: a long function is seen.
    let sample = format!("fn f() {{\n{}}}\n", "    x();\n".repeat(90));
    assert_eq!(function_lengths(&sample), vec![("f".to_owned(), 92)]);
}

#[test]
fn the_architecture_page_names_every_stage_folder() {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
            .unwrap();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy();
            assert!(
                page.contains(&format!("src/{name}/")),
                "docs/architecture.md does not mention src/{name}/"
            );
        }
    }
}
