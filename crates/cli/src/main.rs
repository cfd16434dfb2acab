//! The `beacon-meter` command line: everything is in
//! [`beacon_meter_cli::cli`].

fn main() -> std::process::ExitCode {
    beacon_meter_cli::cli::main()
}
