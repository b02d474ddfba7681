//! The node commands: `status`, `await_startup`, and `import_definitions`
//! (which reads a file or standard input).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::commands::text;
use super::http::Api;
use super::{CtlError, Out, EX_DATAERR, EX_TEMPFAIL, EX_UNAVAILABLE};

/// How long `await_startup` waits when no `--timeout` is given, in seconds
/// (rabbitmqctl's default).
const AWAIT_TIMEOUT_DEFAULT_SECS: u64 = 300;
/// Pause between two probes of `await_startup`, in milliseconds.
const AWAIT_POLL_INTERVAL_MS: u64 = 250;
/// Largest definitions file `import_definitions` reads, in bytes.
const DEFINITIONS_FILE_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// `import_definitions`: from a file, or standard input for `-` or none.
pub fn import_definitions(api: &Api, out: &Out, path: Option<&str>) -> Result<(), CtlError> {
    use std::io::Read;
    let mut body = String::new();
    let read = match path {
        None | Some("-") => {
            out.banner("Importing definitions in JSON from standard input ...");
            std::io::stdin()
                .take(DEFINITIONS_FILE_BYTES_MAX)
                .read_to_string(&mut body)
        }
        Some(p) => {
            out.banner(&format!(
                "Importing definitions in JSON from a file at \"{p}\" ..."
            ));
            std::fs::File::open(p)
                .and_then(|f| f.take(DEFINITIONS_FILE_BYTES_MAX).read_to_string(&mut body))
        }
    };
    read.map_err(|e| CtlError::new(EX_DATAERR, format!("cannot read the definitions: {e}")))?;
    let defs: Value = serde_json::from_str(&body)
        .map_err(|e| CtlError::new(EX_DATAERR, format!("Failed to deserialise input ({e})")))?;
    api.client
        .import_definitions(defs)
        .map_err(|e| api.typed(e))?;
    out.banner("Successfully started definition import. This process is asynchronous and can take some time.");
    Ok(())
}

/// `await_startup`: polls the API until it answers or the timeout passes.
pub fn await_startup(api: &Api, timeout_secs: Option<u64>) -> Result<(), CtlError> {
    let limit = Duration::from_secs(timeout_secs.unwrap_or(AWAIT_TIMEOUT_DEFAULT_SECS));
    let start = Instant::now();
    loop {
        match api.get("/overview") {
            Ok(Some(_)) => return Ok(()),
            // Unreachable, or not serving yet: try again.
            Ok(None)
            | Err(CtlError {
                code: EX_UNAVAILABLE,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        if start.elapsed() >= limit {
            return Err(CtlError::new(
                EX_TEMPFAIL,
                format!(
                    "the broker at {} did not start within {} seconds",
                    api.base(),
                    limit.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(AWAIT_POLL_INTERVAL_MS));
    }
}

/// `status`: the parts of rabbitmqctl's report the API can tell.
pub fn status(api: &Api, out: &Out) -> Result<(), CtlError> {
    let overview = api
        .get("/overview")?
        .ok_or_else(|| CtlError::new(EX_UNAVAILABLE, "no /api/overview"))?;
    let nodes = api.list("/nodes")?;
    let empty = json!({});
    let node = nodes.first().unwrap_or(&empty);
    let name = text(&overview, "node");
    out.banner(&format!("Status of node {name} ..."));
    let gb = |v: Option<&Value>| {
        v.and_then(Value::as_f64)
            .map(|b| format!("{:.4} gb", b / 1e9))
            .unwrap_or_default()
    };
    println!("Runtime\n");
    println!("OS PID: {}", text(node, "os_pid"));
    println!("OS: Linux");
    let uptime = node.get("uptime").and_then(Value::as_u64).unwrap_or(0) / 1000;
    println!("Uptime (seconds): {uptime}");
    println!("RabbitMQ version: {}", text(&overview, "rabbitmq_version"));
    println!("Node name: {name}");
    println!(
        "Erlang configuration: {}",
        text(&overview, "erlang_full_version")
    );
    println!("\nAlarms\n");
    let mem_alarm = node.get("mem_alarm").and_then(Value::as_bool) == Some(true);
    let disk_alarm = node.get("disk_free_alarm").and_then(Value::as_bool) == Some(true);
    match (mem_alarm, disk_alarm) {
        (false, false) => println!("(none)"),
        _ => {
            if mem_alarm {
                println!("Memory alarm on node {name}");
            }
            if disk_alarm {
                println!("Free disk space alarm on node {name}");
            }
        }
    }
    println!("\nMemory\n");
    println!("Total memory used: {}", gb(node.get("mem_used")));
    println!(
        "Memory high watermark setting: {}",
        gb(node.get("mem_limit"))
    );
    println!("\nFree Disk Space\n");
    println!(
        "Low free disk space watermark: {}",
        gb(node.get("disk_free_limit"))
    );
    println!("Free disk space: {}", gb(node.get("disk_free")));
    println!("\nTotals\n");
    let totals = overview.get("object_totals").unwrap_or(&empty);
    println!("Connection count: {}", text(totals, "connections"));
    println!("Queue count: {}", text(totals, "queues"));
    println!("Virtual host count: {}", nodes_vhosts(api)?);
    println!("\nListeners\n");
    for l in overview
        .get("listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let protocol = text(l, "protocol");
        println!(
            "Interface: {}, port: {}, protocol: {protocol}, purpose: {}",
            text(l, "ip_address"),
            text(l, "port"),
            purpose(&protocol)
        );
    }
    Ok(())
}

/// How many vhosts there are.
fn nodes_vhosts(api: &Api) -> Result<usize, CtlError> {
    Ok(api.list("/vhosts")?.len())
}

/// The purpose rabbitmqctl prints for a listener's protocol.
fn purpose(protocol: &str) -> &'static str {
    match protocol {
        "amqp" => "AMQP 0-9-1 and AMQP 1.0",
        "amqp/ssl" => "AMQP 0-9-1 and AMQP 1.0 over TLS",
        "http" => "HTTP API",
        "https" => "HTTP API over TLS (HTTPS)",
        "clustering" => "inter-node and CLI tool communication",
        "http/prometheus" => "Prometheus exporter API over HTTP",
        _ => "",
    }
}
