//! One owner at a time for a meter's windows: [`Meter::attach`].
//!
//! May import `super` and `crate::sync`; no other part of the crate.
//!
//! # Why
//!
//! An owner that delivers a meter's windows (the reporter) also saves the
//! *open* window from time to time (a checkpoint, read with
//! [`Attachment::peek`]), so that a crash loses little. Between such a save
//! and the next [`Attachment::rotate`], the open window's counts are in two
//! places: in the save, and still in the meter. If the owner vanishes there
//! (a reporter dropped without `shutdown`), the save is delivered by the
//! next start on that spool, and a new owner on the *same* meter would
//! deliver the counts again from the meter.
//!
//! So a meter has at most one owner, and remembers how the last one left:
//! * dropped with nothing saved of the open window (it never peeked, or
//!   rotated after its last peek): the meter holds exactly the counts no
//!   one has, and the next [`Meter::attach`] succeeds;
//! * dropped after a peek and before the next rotate: the meter is
//!   [`AttachError::Abandoned`] for good, and the counts are delivered
//!   once, from the save, by whatever restarts on that spool with a new
//!   meter (as a restarted process does).

use super::{Meter, Window};
use crate::sync;
use std::fmt;

/// Who closes a meter's windows for delivery. Kept behind the meter's
/// `owner` lock; only [`Meter::attach`] and [`Attachment`]'s `Drop` change
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Owner {
    /// No owner; the meter holds no count that anyone saved.
    #[default]
    Free,
    /// An [`Attachment`] is alive.
    Attached,
    /// The last owner was dropped after a peek and before the next rotate.
    Abandoned,
}

/// Why [`Meter::attach`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttachError {
    /// Another owner (a running reporter) closes this meter's windows.
    Attached,
    /// The last owner was dropped while a copy of the open window it had
    /// saved was also still in the meter (a reporter dropped without
    /// `shutdown`): a new owner would deliver those counts twice.
    Abandoned,
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::Attached => f.write_str(
                "this meter already has an owner that closes its windows (a running \
                 reporter): shut that one down before attaching another to the same meter",
            ),
            AttachError::Abandoned => f.write_str(
                "this meter's last owner was dropped without shutdown after checkpointing \
                 its open window, so those counts are both in the checkpoint and in the \
                 meter: attach the next owner to a new Meter (the checkpoint is delivered \
                 from the spool), and hand a meter over with shutdown, not drop",
            ),
        }
    }
}

impl std::error::Error for AttachError {}

/// The exclusive right to close a meter's windows for delivery, from
/// [`Meter::attach`].
///
/// Read the meter through it ([`rotate`](Self::rotate),
/// [`peek`](Self::peek)) so that it knows whether the open window has been
/// handed out. Dropping it frees the meter for the next owner, unless a
/// peek has not been followed by a rotate: then the meter is abandoned (see
/// the module docs).
#[derive(Debug)]
pub struct Attachment {
    meter: Meter,
    /// A peek has handed out the open window's counts since the last rotate.
    peeked: bool,
}

impl Meter {
    /// Makes the caller the one owner of this meter's windows.
    ///
    /// ```
    /// use beacon_meter::{AttachError, Meter};
    /// let meter = Meter::new();
    /// let mut owner = meter.attach().unwrap();
    /// assert_eq!(meter.attach().unwrap_err(), AttachError::Attached);
    /// owner.peek(); // e.g. a checkpoint of the open window
    /// owner.rotate(); // the window closes: nothing saved is left in the meter
    /// drop(owner);
    /// let owner = meter.attach().unwrap();
    /// let _ = owner.meter().peek(); // not through the owner: not tracked
    /// drop(owner);
    /// let mut owner = meter.attach().unwrap();
    /// owner.peek();
    /// drop(owner); // dropped with the peeked counts still in the meter
    /// assert_eq!(meter.attach().unwrap_err(), AttachError::Abandoned);
    /// ```
    pub fn attach(&self) -> Result<Attachment, AttachError> {
        let mut owner = sync::lock(&self.inner.owner);
        match *owner {
            Owner::Free => {
                *owner = Owner::Attached;
                Ok(Attachment {
                    meter: self.clone(),
                    peeked: false,
                })
            }
            Owner::Attached => Err(AttachError::Attached),
            Owner::Abandoned => Err(AttachError::Abandoned),
        }
    }
}

impl Attachment {
    /// The meter, e.g. to record into.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// [`Meter::rotate`]: closes the open window and returns it. What a
    /// peek handed out is now in the returned window, no longer in the
    /// meter.
    pub fn rotate(&mut self) -> Window {
        let w = self.meter.rotate();
        self.peeked = false;
        w
    }

    /// [`Meter::peek`]: the open window so far. Until the next
    /// [`rotate`](Self::rotate), dropping this attachment abandons the
    /// meter.
    pub fn peek(&mut self) -> Window {
        self.peeked = true;
        self.meter.peek()
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let mut owner = sync::lock(&self.meter.inner.owner);
        *owner = if self.peeked {
            Owner::Abandoned
        } else {
            Owner::Free
        };
    }
}
