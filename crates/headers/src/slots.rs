//! Where the rendered values of one request's templated rules wait until the rules apply
//! them.

use http::HeaderValue;

/// The rendered values of one request's templated rules, by slot; `None` means the rule's
/// template rendered nothing. Slots are filled in increasing order.
pub(crate) trait Slots {
    /// Stores slot `slot`'s value.
    fn put(&mut self, slot: usize, value: Option<HeaderValue>);
    /// Takes slot `slot`'s value out.
    fn take(&mut self, slot: usize) -> Option<HeaderValue>;
}

/// Slots on the stack, for rules applied right away (requests): the first few live inline,
/// so a request neither allocates nor moves them.
pub(crate) struct InlineSlots {
    inline: [Option<HeaderValue>; INLINE],
    spill: Vec<Option<HeaderValue>>,
}

const INLINE: usize = 4;

impl InlineSlots {
    pub(crate) fn new() -> Self {
        Self {
            inline: Default::default(),
            spill: Vec::new(),
        }
    }
}

impl Slots for InlineSlots {
    fn put(&mut self, slot: usize, value: Option<HeaderValue>) {
        if let Some(cell) = self.inline.get_mut(slot) {
            *cell = value;
        } else {
            self.spill.push(value);
        }
    }

    fn take(&mut self, slot: usize) -> Option<HeaderValue> {
        match slot.checked_sub(INLINE) {
            None => self.inline.get_mut(slot)?.take(),
            Some(spilled) => self.spill.get_mut(spilled)?.take(),
        }
    }
}

/// Slots that travel in a response future: small to move, and without an allocation unless
/// the rules have templates.
impl Slots for Vec<Option<HeaderValue>> {
    fn put(&mut self, slot: usize, value: Option<HeaderValue>) {
        debug_assert_eq!(slot, self.len(), "slots are filled in order");
        self.push(value);
    }

    fn take(&mut self, slot: usize) -> Option<HeaderValue> {
        self.get_mut(slot)?.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_beyond_the_inline_ones_are_kept() {
        let mut rendered = InlineSlots::new();
        for slot in 0..7 {
            rendered.put(slot, Some(HeaderValue::from(slot)));
        }
        for slot in (0..7).rev() {
            assert_eq!(rendered.take(slot), Some(HeaderValue::from(slot)));
            assert_eq!(rendered.take(slot), None);
        }
    }
}
