//! `warren ctl`: rabbitmqctl's everyday commands, with its command names,
//! arguments, banners, tab-separated tables and exit codes, talking to a
//! running broker (warren or RabbitMQ) over the management HTTP API, so it
//! works remotely. `http.rs` is the HTTP side, `columns.rs` the info keys
//! and value formatting, `commands.rs`, `objects.rs` and `node.rs` the commands.

mod columns;
mod commands;
mod http;
mod node;
mod objects;

use clap::{Args, Subcommand};

/// rabbitmqctl's exit codes (BSD sysexits).
pub const EX_USAGE: i32 = 64;
/// Bad data (e.g. a vhost that does not exist).
pub const EX_DATAERR: i32 = 65;
/// A user that does not exist.
pub const EX_NOUSER: i32 = 67;
/// Not found, or the broker cannot be reached.
pub const EX_UNAVAILABLE: i32 = 69;
/// Anything else the broker refused.
pub const EX_SOFTWARE: i32 = 70;
/// The broker did not start within the timeout.
pub const EX_TEMPFAIL: i32 = 75;
/// The credentials were refused.
pub const EX_NOPERM: i32 = 77;

/// `warren ctl`'s options; like rabbitmqctl's they may stand before or
/// after the command name.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = false)]
pub struct CtlArgs {
    /// The management API's base URL.
    #[arg(
        long,
        env = "WARREN_CTL_URL",
        default_value = "http://127.0.0.1:15672",
        global = true
    )]
    pub url: String,
    /// User for the API's Basic auth.
    #[arg(
        long = "username",
        env = "WARREN_CTL_USERNAME",
        default_value = "guest",
        global = true
    )]
    pub api_username: String,
    /// Password for the API's Basic auth.
    #[arg(
        long = "password",
        env = "WARREN_CTL_PASSWORD",
        default_value = "guest",
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    pub api_password: String,
    /// Suppress informational messages (the banner); tables keep their header.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// Suppress informational messages and table headers.
    #[arg(short = 's', long, global = true)]
    pub silent: bool,
    /// Do not print table headers.
    #[arg(long, global = true)]
    pub no_table_headers: bool,
    /// The virtual host the command works in.
    #[arg(short = 'p', long, default_value = "/", global = true)]
    pub vhost: String,
    /// Operation timeout in seconds (await_startup: how long to wait).
    #[arg(short = 't', long, global = true)]
    pub timeout: Option<u64>,
    /// The command.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// rabbitmqctl's command names and positional arguments.
#[derive(Subcommand)]
#[command(rename_all = "snake_case")]
pub enum CtlCommand {
    /// Creates a user (the password is hashed here, never sent in clear).
    AddUser {
        /// User name.
        username: String,
        /// Password.
        #[arg(allow_hyphen_values = true)]
        password: String,
    },
    /// Removes a user.
    DeleteUser {
        /// User name.
        username: String,
    },
    /// Changes a user's password.
    ChangePassword {
        /// User name.
        username: String,
        /// New password.
        #[arg(allow_hyphen_values = true)]
        password: String,
    },
    /// Sets a user's tags (none clears them).
    SetUserTags {
        /// User name.
        username: String,
        /// Tags.
        tags: Vec<String>,
    },
    /// Lists users.
    ListUsers,
    /// Creates a virtual host.
    AddVhost {
        /// Vhost name.
        #[arg(value_name = "VHOST")]
        name: String,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// Comma-separated tags.
        #[arg(long)]
        tags: Option<String>,
        /// Default queue type.
        #[arg(long = "default-queue-type")]
        default_queue_type: Option<String>,
    },
    /// Deletes a virtual host and everything in it.
    DeleteVhost {
        /// Vhost name.
        #[arg(value_name = "VHOST")]
        name: String,
    },
    /// Lists virtual hosts.
    ListVhosts {
        /// Info keys.
        columns: Vec<String>,
    },
    /// Sets a user's permissions in the vhost.
    SetPermissions {
        /// User name.
        username: String,
        /// Configure regex.
        #[arg(allow_hyphen_values = true)]
        conf: String,
        /// Write regex.
        #[arg(allow_hyphen_values = true)]
        write: String,
        /// Read regex.
        #[arg(allow_hyphen_values = true)]
        read: String,
    },
    /// Revokes a user's permissions in the vhost.
    ClearPermissions {
        /// User name.
        username: String,
    },
    /// Lists permissions in the vhost.
    ListPermissions,
    /// Lists a user's permissions in every vhost.
    ListUserPermissions {
        /// User name.
        username: String,
    },
    /// Sets a user's topic permissions on an exchange in the vhost.
    SetTopicPermissions {
        /// User name.
        username: String,
        /// Topic exchange.
        exchange: String,
        /// Write regex (routing keys).
        #[arg(allow_hyphen_values = true)]
        write: String,
        /// Read regex (routing keys).
        #[arg(allow_hyphen_values = true)]
        read: String,
    },
    /// Lists topic permissions in the vhost.
    ListTopicPermissions,
    /// Lists queues and their properties.
    ListQueues {
        /// Info keys.
        columns: Vec<String>,
    },
    /// Lists exchanges.
    ListExchanges {
        /// Info keys.
        columns: Vec<String>,
    },
    /// Lists bindings.
    ListBindings {
        /// Info keys.
        columns: Vec<String>,
    },
    /// Lists AMQP connections.
    ListConnections {
        /// Info keys.
        columns: Vec<String>,
    },
    /// Lists AMQP channels.
    ListChannels {
        /// Info keys.
        columns: Vec<String>,
    },
    /// Lists consumers in the vhost.
    ListConsumers {
        /// Info keys.
        columns: Vec<String>,
    },
    /// Closes a connection (named as `list_connections name` prints it).
    CloseConnection {
        /// Connection name.
        connection: String,
        /// Reason given to the client.
        explanation: String,
    },
    /// Removes all ready messages from a queue.
    PurgeQueue {
        /// Queue name.
        queue: String,
    },
    /// Deletes a queue.
    DeleteQueue {
        /// Queue name.
        queue: String,
        /// Only if it has no consumers.
        #[arg(short = 'u', long = "if-unused")]
        if_unused: bool,
        /// Only if it has no messages.
        #[arg(short = 'e', long = "if-empty")]
        if_empty: bool,
    },
    /// Sets the vhost's limits (`{"max-connections": N, "max-queues": N}`).
    SetVhostLimits {
        /// Limits as JSON.
        definition: String,
    },
    /// Lists the vhost's limits.
    ListVhostLimits,
    /// Sets a user's limits (`{"max-connections": N, "max-channels": N}`).
    SetUserLimits {
        /// User name.
        username: String,
        /// Limits as JSON.
        definition: String,
    },
    /// Lists a user's limits.
    ListUserLimits {
        /// User name.
        #[arg(long)]
        user: String,
    },
    /// Writes the definitions to a file (`-` for standard output).
    ExportDefinitions {
        /// Target file.
        #[arg(allow_hyphen_values = true)]
        path: String,
    },
    /// Imports definitions from a file (`-` or none for standard input).
    ImportDefinitions {
        /// Source file.
        #[arg(allow_hyphen_values = true)]
        path: Option<String>,
    },
    /// Shows the node's status.
    Status,
    /// Waits until the broker answers (up to --timeout seconds, default 300).
    AwaitStartup,
}

/// A failed command: what rabbitmqctl would print and its exit code.
#[derive(Debug)]
pub struct CtlError {
    /// Exit code.
    pub code: i32,
    /// Message (printed after an `Error:` line unless `bare`).
    pub message: String,
    /// Print the message alone, as rabbitmqctl does for some errors.
    pub bare: bool,
}

impl CtlError {
    /// An error printed after `Error:`.
    pub fn new(code: i32, message: impl Into<String>) -> CtlError {
        CtlError {
            code,
            message: message.into(),
            bare: false,
        }
    }

    /// An error printed as it is.
    pub fn bare(code: i32, message: impl Into<String>) -> CtlError {
        CtlError {
            code,
            message: message.into(),
            bare: true,
        }
    }
}

/// Where a command prints: banners and notes unless quiet, table headers
/// unless silent.
pub struct Out {
    /// `--quiet` or `--silent`: no banner.
    quiet: bool,
    /// `--silent` or `--no-table-headers`: no header line.
    headerless: bool,
}

impl Out {
    /// The informational line before a command's output.
    pub fn banner(&self, text: &str) {
        if !self.quiet {
            println!("{text}");
        }
    }

    /// A table: the header (when there are rows) and the rows.
    pub fn table(&self, header: &[String], rows: &[String]) {
        if rows.is_empty() {
            return;
        }
        if !self.headerless {
            println!("{}", header.join("\t"));
        }
        for r in rows {
            println!("{r}");
        }
    }
}

/// Runs one `warren ctl` invocation; returns the process exit code.
pub fn run(args: CtlArgs) -> i32 {
    let out = Out {
        quiet: args.quiet || args.silent,
        headerless: args.silent || args.no_table_headers,
    };
    let result = http::Api::new(&args.url, &args.api_username, &args.api_password)
        .and_then(|api| commands::dispatch(&api, &out, &args));
    match result {
        Ok(()) => 0,
        Err(e) => {
            if e.bare {
                eprintln!("{}", e.message);
            } else {
                eprintln!("Error:\n{}", e.message);
            }
            e.code
        }
    }
}
