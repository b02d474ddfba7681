//! A connection's channels by number.

use crate::session::Channel;

/// Channel numbers below this live in the indexed slots; higher ones
/// (rare: RabbitMQ lets a client open channel 65535 as long as fewer than
/// channel_max channels are open) in a small sorted list, so one high
/// number does not cost a connection a 512 KiB table.
const DENSE_CHANNELS_MAX: usize = 1024;

/// A connection's open channels, indexed by channel number: a lookup is an
/// index, not a hash probe (three per published message). The slots grow
/// to the highest low channel number opened, so most connections (channel
/// 1) hold two slots; at most `DENSE_CHANNELS_MAX` slots of 8 bytes.
#[derive(Default)]
pub(crate) struct ChannelTable {
    /// Channels numbered below `DENSE_CHANNELS_MAX`, by number.
    slots: Vec<Option<Box<Channel>>>,
    /// Channels numbered from `DENSE_CHANNELS_MAX` up, sorted by number
    /// (at most channel_max entries).
    high: Vec<(u16, Box<Channel>)>,
    /// Open channels in both (for channel_max).
    len: usize,
}

impl ChannelTable {
    #[inline]
    pub fn get(&self, id: &u16) -> Option<&Channel> {
        match self.slots.get(usize::from(*id)) {
            Some(s) => s.as_deref(),
            None => self.get_high(*id),
        }
    }

    #[inline]
    pub fn get_mut(&mut self, id: &u16) -> Option<&mut Channel> {
        let i = usize::from(*id);
        if i < self.slots.len() {
            return self.slots[i].as_deref_mut();
        }
        if self.high.is_empty() {
            return None;
        }
        let k = self.high.binary_search_by_key(id, |(n, _)| *n).ok()?;
        Some(&mut self.high[k].1)
    }

    #[cold]
    fn get_high(&self, id: u16) -> Option<&Channel> {
        if self.high.is_empty() {
            return None;
        }
        let k = self.high.binary_search_by_key(&id, |(n, _)| *n).ok()?;
        Some(&self.high[k].1)
    }

    /// Number of open channels.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn insert(&mut self, id: u16, ch: Box<Channel>) {
        let i = usize::from(id);
        if i >= DENSE_CHANNELS_MAX {
            match self.high.binary_search_by_key(&id, |(n, _)| *n) {
                Ok(k) => self.high[k].1 = ch,
                Err(k) => {
                    self.high.insert(k, (id, ch));
                    self.len += 1;
                }
            }
            return;
        }
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        if self.slots[i].replace(ch).is_none() {
            self.len += 1;
        }
    }

    pub fn remove(&mut self, id: &u16) -> Option<Box<Channel>> {
        if usize::from(*id) >= DENSE_CHANNELS_MAX {
            let k = self.high.binary_search_by_key(id, |(n, _)| *n).ok()?;
            self.len -= 1;
            let (_, ch) = self.high.remove(k);
            if self.high.is_empty() {
                self.high = Vec::new();
            }
            return Some(ch);
        }
        let ch = self.slots.get_mut(usize::from(*id))?.take()?;
        self.len -= 1;
        // Give back trailing empty slots so a connection that once opened a
        // high channel number does not keep the table.
        while self.slots.last().is_some_and(|s| s.is_none()) {
            self.slots.pop();
        }
        if self.slots.is_empty() {
            self.slots = Vec::new();
        }
        Some(ch)
    }

    pub fn values(&self) -> impl Iterator<Item = &Channel> + '_ {
        self.slots
            .iter()
            .filter_map(|s| s.as_deref())
            .chain(self.high.iter().map(|(_, ch)| &**ch))
    }

    /// Numbers of the open channels, ascending.
    pub fn keys(&self) -> impl Iterator<Item = u16> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as u16)
            .chain(self.high.iter().map(|(n, _)| *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove_and_shrink() {
        let mut t = ChannelTable::default();
        assert!(t.get(&1).is_none());
        t.insert(1, Box::new(Channel::new()));
        t.insert(5, Box::new(Channel::new()));
        assert!(t.get(&1).is_some() && t.get_mut(&5).is_some());
        assert!(t.get(&3).is_none() && t.get(&u16::MAX).is_none());
        assert_eq!(t.keys().collect::<Vec<_>>(), vec![1, 5]);
        assert_eq!(t.values().count(), 2);
        assert!(t.remove(&5).is_some());
        assert!(t.remove(&5).is_none());
        assert_eq!(t.slots.len(), 2, "trailing empty slots are dropped");
        assert!(t.remove(&1).is_some());
        assert_eq!(t.slots.capacity(), 0);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn high_channel_numbers_do_not_grow_the_slots() {
        let mut t = ChannelTable::default();
        t.insert(u16::MAX, Box::new(Channel::new()));
        t.insert(2, Box::new(Channel::new()));
        t.insert(40_000, Box::new(Channel::new()));
        t.insert(40_000, Box::new(Channel::new()));
        assert_eq!(t.len(), 3);
        assert_eq!(t.slots.len(), 3);
        assert!(t.get(&u16::MAX).is_some() && t.get_mut(&40_000).is_some());
        assert!(t.get(&40_001).is_none() && t.get_mut(&1024).is_none());
        assert_eq!(t.keys().collect::<Vec<_>>(), vec![2, 40_000, u16::MAX]);
        assert_eq!(t.values().count(), 3);
        assert!(t.remove(&40_000).is_some() && t.remove(&40_000).is_none());
        assert!(t.remove(&u16::MAX).is_some());
        assert_eq!(t.len(), 1);
        assert_eq!(t.high.capacity(), 0);
    }
}
