//! A bootstrap file for operators and tests until the management API
//! exists: one rabbitmqctl-style command per line, applied at startup
//! through the core's management entry points (upserts, so applying the
//! same file at every start is harmless). Fields are separated by
//! whitespace, so a regex may not contain spaces. `#` starts a comment.
//!
//! ```text
//! add_vhost NAME
//! add_user NAME PASSWORD [TAG,TAG...]
//! delete_user NAME
//! set_permissions VHOST USER CONFIGURE WRITE READ
//! set_topic_permissions VHOST USER EXCHANGE WRITE READ
//! set_vhost_limits VHOST max-connections=N max-queues=N
//! set_user_limits USER max-connections=N max-channels=N
//! ```
//!
//! A JSON definitions file (RabbitMQ's `load_definitions`) is the
//! management crate's, the only one that speaks JSON.

use anyhow::{bail, Context};
use broker_core::access::{
    PermissionRecord, TopicPermissionRecord, UserLimits, UserRecord, VhostLimits, VhostRecord,
};
use broker_core::Broker;

/// `key=N` values of a limits command into `set` (unknown keys refused).
fn limits(args: &[&str], mut set: impl FnMut(&str, i64) -> bool) -> anyhow::Result<()> {
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            bail!("expected key=value, got {a}");
        };
        let v: i64 = v.parse().with_context(|| format!("bad limit {a}"))?;
        if !set(k, v) {
            bail!("unknown limit {k}");
        }
    }
    Ok(())
}

/// Applies every line of `text`; stops at the first bad one.
pub fn apply(broker: &mut Broker, text: &str) -> anyhow::Result<()> {
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some((&cmd, args)) = f.split_first() else {
            continue;
        };
        let ctx = || format!("line {}: {line}", n + 1);
        let r = match (cmd, args) {
            ("add_vhost", [name]) => broker.add_vhost(VhostRecord {
                name: name.to_string(),
                ..Default::default()
            }),
            ("add_user", [name, pass, rest @ ..]) if rest.len() <= 1 => {
                let tags = rest
                    .first()
                    .map(|t| t.split(',').map(str::to_string).collect())
                    .unwrap_or_default();
                broker.add_user(UserRecord::with_password(name, pass, tags))
            }
            ("delete_user", [name]) => broker.delete_user(name),
            ("set_permissions", [vhost, user, c, w, r]) => {
                broker.set_permissions(PermissionRecord {
                    user: user.to_string(),
                    vhost: vhost.to_string(),
                    configure: c.to_string(),
                    write: w.to_string(),
                    read: r.to_string(),
                })
            }
            ("set_topic_permissions", [vhost, user, x, w, r]) => {
                broker.set_topic_permissions(TopicPermissionRecord {
                    user: user.to_string(),
                    vhost: vhost.to_string(),
                    exchange: x.to_string(),
                    write: w.to_string(),
                    read: r.to_string(),
                })
            }
            ("set_vhost_limits", [vhost, rest @ ..]) => {
                let mut l = VhostLimits::default();
                limits(rest, |k, v| match k {
                    "max-connections" => {
                        l.max_connections = v;
                        true
                    }
                    "max-queues" => {
                        l.max_queues = v;
                        true
                    }
                    _ => false,
                })
                .with_context(ctx)?;
                broker.set_vhost_limits(vhost, l)
            }
            ("set_user_limits", [user, rest @ ..]) => {
                let mut l = UserLimits::default();
                limits(rest, |k, v| match k {
                    "max-connections" => {
                        l.max_connections = v;
                        true
                    }
                    "max-channels" => {
                        l.max_channels = v;
                        true
                    }
                    _ => false,
                })
                .with_context(ctx)?;
                broker.set_user_limits(user, l)
            }
            _ => bail!("line {}: unknown command or wrong arguments: {line}", n + 1),
        };
        r.map_err(|e| anyhow::anyhow!("{e}")).with_context(ctx)?;
    }
    Ok(())
}
