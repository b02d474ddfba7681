//! `warren-perf`: argument parsing only; every scenario lives in the library.

use clap::{Parser, Subcommand};
use warren_perf::{
    connection_churn, declare_queues, delayed, idle_connections, latency, publish_drain,
    queue_churn, relay, sink, throughput, topology,
};

/// Load generator for any AMQP 0-9-1 broker.
#[derive(Parser, Debug)]
#[command(name = "warren-perf", version)]
struct Cli {
    /// Worker threads for the async runtime (0 = one per core)
    #[arg(long, global = true, default_value_t = 0)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Producers and consumers for a fixed duration; rates per second
    Throughput(throughput::ThroughputArgs),
    /// Fixed-rate publish→deliver latency percentiles
    Latency(latency::LatencyArgs),
    /// Publish N messages with no consumer, then drain them
    PublishDrain(publish_drain::PublishDrainArgs),
    /// N delayed messages spread over a window; lateness at delivery
    Delayed(delayed::DelayedArgs),
    /// Open and close connections
    ConnectionChurn(connection_churn::ConnectionChurnArgs),
    /// Declare and delete queues
    QueueChurn(queue_churn::QueueChurnArgs),
    /// Large topology: declare queues, bind, publish through it, delete
    Topology(topology::TopologyArgs),
    /// Declare N queues and leave them in place
    DeclareQueues(declare_queues::DeclareQueuesArgs),
    /// Hold many idle connections and measure broker RSS per connection
    IdleConnections(idle_connections::IdleConnectionsArgs),
    /// A fake broker that discards everything (measures the generator itself)
    Sink(sink::SinkArgs),
    /// Raw TCP relay (baseline): copies bytes from each source connection to a destination
    Relay(relay::RelayArgs),
    /// Pre-encoded deliveries through `warren-perf relay`, parsed and counted (baseline)
    RelayThroughput(relay::RelayThroughputArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if cli.threads > 0 {
        rt.worker_threads(cli.threads);
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Throughput(a) => throughput::run(a).await,
            Command::Latency(a) => latency::run(a).await,
            Command::PublishDrain(a) => publish_drain::run(a).await,
            Command::Delayed(a) => delayed::run(a).await,
            Command::ConnectionChurn(a) => connection_churn::run(a).await,
            Command::QueueChurn(a) => queue_churn::run(a).await,
            Command::Topology(a) => topology::run(a).await,
            Command::DeclareQueues(a) => declare_queues::run(a).await,
            Command::IdleConnections(a) => idle_connections::run(a).await,
            Command::Sink(a) => sink::run(a).await,
            Command::Relay(a) => relay::run_relay(a).await,
            Command::RelayThroughput(a) => relay::run_throughput(a).await,
        }
    })
}
