//! The embedded brokers running in this process, by name, so that a URL
//! (`warren-embedded://NAME`) reaches one from anywhere in the process.

use std::collections::HashMap;
use std::sync::OnceLock;

use parking_lot::Mutex;
use server::InProcess;

/// Name → connector (None while the broker is starting).
type Map = HashMap<String, Option<InProcess>>;

fn map() -> &'static Mutex<Map> {
    static MAP: OnceLock<Mutex<Map>> = OnceLock::new();
    MAP.get_or_init(Default::default)
}

/// The connector of the running broker `name`.
pub(crate) fn lookup(name: &str) -> Option<InProcess> {
    map().lock().get(name).cloned().flatten()
}

/// A broker's entry; removed when dropped.
pub(crate) struct Registration {
    /// The broker's name.
    name: String,
}

impl Registration {
    /// Claims `name`; Err if a broker of that name runs (or starts).
    pub(crate) fn reserve(name: &str) -> anyhow::Result<Registration> {
        let mut m = map().lock();
        if m.contains_key(name) {
            anyhow::bail!("an embedded broker named {name:?} is already running in this process");
        }
        m.insert(name.to_string(), None);
        Ok(Registration { name: name.into() })
    }

    /// Makes the broker reachable by name.
    pub(crate) fn fill(&self, c: InProcess) {
        map().lock().insert(self.name.clone(), Some(c));
    }

    /// Makes it unreachable (at the start of shutdown), keeping the name
    /// claimed until the registration drops.
    pub(crate) fn clear(&self) {
        map().lock().insert(self.name.clone(), None);
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        map().lock().remove(&self.name);
    }
}
