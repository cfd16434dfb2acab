//! The sink binary under a connection flood, with its open-file limit at
//! 1024: 1100 idle connections (more than it has descriptors for) must not
//! lock a client that sends a request out, the oldest idle ones are the
//! ones closed, and the log says so at most once per interval, not every
//! 20 ms. (Without the limit the request waited for the idle connections'
//! 10 s header timeout, and "could not accept" was logged every 20 ms.)

use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Stdio};

use crate::common::Running;
use std::time::Duration;

#[test]
fn idle_connections_past_the_fd_limit_never_lock_a_client_out() {
    const IDLE: usize = 1100;
    if !room_for_descriptors(IDLE as u64 + 200) {
        eprintln!("SKIPPED the connection flood: this process may not open {IDLE} sockets");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_beacon-meter");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "ulimit -n 1024 && exec '{bin}' sink --bind 127.0.0.1:0 --json"
        ))
        .stderr(Stdio::piped());
    let mut sink = Running::start(command);
    let url = sink.url.clone();
    let addr = url.trim_start_matches("http://").to_owned();

    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    // A client that sends a request, after the flood: answered, where it
    // used to wait for the idle connections' 10 s header timeout.
    let answer = beacon_meter_testkit::runtime().block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        client
            .get(format!("{url}/v1/summary"))
            .send()
            .await
            .map(|a| a.status().as_u16())
    });
    assert_eq!(
        answer.ok(),
        Some(200),
        "a request behind {IDLE} idle connections was not served"
    );
    // The oldest idle connection was the one shed: the sink closed it.
    let mut first = &idle[0];
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(
        first.read(&mut [0; 16]).unwrap_or(usize::MAX),
        0,
        "the oldest idle connection is open"
    );

    sink.child.kill().unwrap();
    sink.child.wait().unwrap();
    let mut stderr = String::new();
    sink.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let complaints = stderr
        .lines()
        .filter(|l| l.contains("could not accept"))
        .count();
    assert!(
        complaints <= 1,
        "{complaints} accept failures logged:\n{stderr:.2000}"
    );
    drop(idle);
}

/// Raises this process's soft open-file limit to at least `n` if the hard
/// limit allows; whether it is now at least `n`.
fn room_for_descriptors(n: u64) -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for getrlimit to fill and setrlimit
    // to read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return false;
        }
        if lim.rlim_cur >= n as libc::rlim_t {
            return true;
        }
        if lim.rlim_max < n as libc::rlim_t {
            return false;
        }
        lim.rlim_cur = n as libc::rlim_t;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
    }
}
