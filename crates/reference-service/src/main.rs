//! `reference-service`: the whole system in one process with an embedded warren (default), or one
//! role per process against warren / RabbitMQ (`--mode remote --url amqp://... --role api`).

use clap::Parser;
use warren_reference_service::{Settings, System};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let settings = Settings::parse();
    let system = System::start(settings).await?;
    println!(
        "reference-service: http://{} (try: curl -XPOST -H 'content-type: application/json' \
         -d '{{\"email\":\"ann@example.com\",\"name\":\"Ann\"}}' http://{}/users)",
        system.http_addr, system.http_addr
    );
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    system.shutdown().await;
    Ok(())
}
