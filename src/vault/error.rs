//! The vault's error: nests every layer's error; `http::error` maps each to a status and a
//! stable `code`.

use crate::domain::{FieldError, HolderError, LicenceIdError};
use crate::log::sequencer::SequencerError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("holder: {0}")]
    Holder(#[from] HolderError),
    #[error("holder: {0} (a pre-2015 pilot code enters only after an administrator's override: licvault holders allow-pilot)")]
    HolderCheck(HolderError),
    #[error("licence identifier: {0}")]
    LicenceId(#[from] LicenceIdError),
    #[error("licence type code: {0}")]
    TypeCode(LicenceIdError),
    #[error("no licence type {0} in the catalogue")]
    UnknownType(String),
    #[error("face fields: {0}")]
    Fields(#[from] FieldError),
    #[error("{0}")]
    HolderTypeNotAllowed(String),
    #[error("{0}")]
    Dates(String),
    /// A date that is not a date, or outside the range a licence can carry.
    #[error("{0}")]
    Date(String),
    #[error("{0}")]
    Text(#[from] crate::domain::TextError),
    #[error("{0}")]
    Invalid(String),
    #[error("no licence {0}")]
    NotFound(String),
    /// No checkpoint kept at that size (`audit.rs`).
    #[error("{0}")]
    NoCheckpoint(String),
    /// A tile the log does not hold (yet).
    #[error("no tile {0}")]
    NoTile(String),
    #[error("no client {0}")]
    ClientNotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("this Idempotency-Key was used before with a different request body")]
    IdempotencyMismatch,
    /// A derived view disagrees with the log: no answer is given from it.
    #[error("store inconsistent: {0}")]
    StoreInconsistent(String),
    /// No seal certificate of this department is valid now: nothing can be signed for it.
    #[error("{0}")]
    NoValidSeal(String),
    #[error(transparent)]
    Sequencer(#[from] SequencerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key directory that fails its checks (on reload: nothing changed).
    #[error("keys: {0}")]
    KeysInvalid(String),
    /// The keys configured now are not the ones the log was created with: start-up stops.
    #[error("{0}")]
    KeysChanged(String),
    #[error("use_reason is required: state the matter this read serves (用证事由), 1–200 characters")]
    UseReasonRequired,
    #[error("use_reason has {0} characters; at most 200 are allowed")]
    UseReasonTooLong(usize),
    #[error("no service item {0} in the catalogue")]
    UnknownServiceItem(String),
    #[error("{0} contains a citizen ID number: free text goes into the log, where citizen numbers never appear in clear; leave it out")]
    PersonalNumber(String),
    #[error("{0}")]
    ApplicantType(String),
    #[error("{0}")]
    UnknownHolderRole(String),
    #[error("cursor: {0}")]
    InvalidCursor(String),
    /// The licence is not in a state the request needs (an annotated copy of a revoked licence).
    #[error("{0}")]
    NotValid(String),
    /// A catalogue change that does not fit the catalogue.
    #[error("catalogue: {0}")]
    InvalidCatalogue(String),
    /// No annotation key is configured (keys/annotation.key.pem).
    #[error("{0}")]
    NoAnnotationKey(String),
    /// The holder channel asked for a holder's licence without naming the holder.
    #[error(
        "the holder channel names the holder it acts for: header Licvault-Holder (type:number), or holder in the body"
    )]
    HolderRequired,
    /// A licence issued before compact documents has none.
    #[error("{0} has no compact document (it was issued before they were made); use profile=full")]
    NoCompact(String),
    #[error("{0} has no link to withdraw")]
    NoLink(String),
    /// A disclosure asked for that the licence does not have.
    #[error("{0}")]
    UnknownDisclosure(String),
    /// A payload redeemed that is not a presentation this platform signed.
    #[error("not a valid presentation: {0}")]
    InvalidPresentation(String),
    #[error("the presentation expired at {0}; ask the holder for a new one")]
    PresentationExpired(String),
    #[error("this presentation was not made by this vault")]
    PresentationNotFound,
    #[error("the presentation was redeemed already: {0}")]
    PresentationRedeemed(String),
    #[error("internal: {0}")]
    Internal(String),
}
