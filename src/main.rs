//! The `beacon-meter` command line; everything is in [`cli`], which uses
//! the library as `beacon_meter::…`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
