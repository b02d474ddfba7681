//! A connection's channels by number.

use crate::broker::Channel;

/// A connection's open channels, indexed by channel number: a lookup is an
/// index, not a hash probe (three per published message). Grows to the
/// highest channel number opened, so most connections (channel 1) hold two
/// slots; numbers are bounded by the negotiated channel_max (at most
/// channel_max + 1 slots of 8 bytes).
#[derive(Default)]
pub(crate) struct ChannelTable {
    slots: Vec<Option<Box<Channel>>>,
}

impl ChannelTable {
    #[inline]
    pub fn get(&self, id: &u16) -> Option<&Channel> {
        self.slots.get(usize::from(*id))?.as_deref()
    }

    #[inline]
    pub fn get_mut(&mut self, id: &u16) -> Option<&mut Channel> {
        self.slots.get_mut(usize::from(*id))?.as_deref_mut()
    }

    pub fn insert(&mut self, id: u16, ch: Box<Channel>) {
        let i = usize::from(id);
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i] = Some(ch);
    }

    pub fn remove(&mut self, id: &u16) -> Option<Box<Channel>> {
        let ch = self.slots.get_mut(usize::from(*id))?.take();
        // Give back trailing empty slots so a connection that once opened a
        // high channel number does not keep the table.
        while self.slots.last().is_some_and(|s| s.is_none()) {
            self.slots.pop();
        }
        if self.slots.is_empty() {
            self.slots = Vec::new();
        }
        ch
    }

    pub fn values(&self) -> impl Iterator<Item = &Channel> + '_ {
        self.slots.iter().filter_map(|s| s.as_deref())
    }

    /// Numbers of the open channels, ascending.
    pub fn keys(&self) -> impl Iterator<Item = u16> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as u16)
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
    }
}
