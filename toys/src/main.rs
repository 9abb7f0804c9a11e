//! The `l3d` program; see `l3d --help`.

fn main() -> std::process::ExitCode {
    toys::cli::main()
}
