#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    loy::cli::main()
}
