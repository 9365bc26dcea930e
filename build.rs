//! Rebuilds the binary when a file it embeds changes: `include_dir!` does not tell cargo which
//! files it read, so without this an edited template, catalog or stylesheet would keep serving
//! its old text until some Rust file changed.

fn main() {
    for dir in ["public", "admin", "templates/default"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
