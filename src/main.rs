//! The `beacon-meter` command line; everything is in `beacon_meter::cli`.

fn main() -> std::process::ExitCode {
    beacon_meter::cli::main()
}
