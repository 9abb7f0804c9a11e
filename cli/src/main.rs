//! The `l3d` program; see `l3d --help`.

fn main() -> std::process::ExitCode {
    l3d_cli::cli::main()
}
