//! Licence status (DESIGN §2). Stored statuses change only through events; `expired` and
//! `not_yet_valid` are derived from the validity period and the time of asking.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Valid,
    /// 暂扣: use suspended, until a date or until reinstated.
    Suspended,
    /// 撤回 (行政许可法 art. 8): a lawful licence withdrawn because the law or facts changed.
    Withdrawn,
    /// 撤销 (art. 69): the grant was defective and is voided.
    Annulled,
    /// 吊销: revoked as an administrative penalty. Leaves written before the status model had
    /// 撤回 and 撤销 said `revoke` for both 撤销 and 吊销; they are read as this status.
    Revoked,
    /// 注销 (art. 70): the file closed, after expiry, 撤回, 撤销, 吊销, or the holder's end.
    Cancelled,
    /// 已更新: a newer version exists.
    Superseded,
    /// Derived: past `exp`.
    Expired,
    /// Derived: before `nbf`.
    NotYetValid,
}

/// A status-changing action by the issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Suspend,
    Reinstate,
    Withdraw,
    Annul,
    Revoke,
    Cancel,
}

/// The kind of a new version of a licence (DOMAIN.md, 行政许可法 arts. 49–50).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionKind {
    /// 延续: a new validity period, before the licence expires.
    Renewal,
    /// 变更: a change of face data; the validity period stays unless given.
    Change,
    /// 补证: a replacement after loss or damage: the same face and period, a new document.
    Replacement,
    /// 换证: an exchange (a new format, say): the same face and period, a new document.
    Exchange,
}

impl VersionKind {
    pub const ALL: [VersionKind; 4] = [Self::Renewal, Self::Change, Self::Replacement, Self::Exchange];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Renewal => "renewal",
            Self::Change => "change",
            Self::Replacement => "replacement",
            Self::Exchange => "exchange",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn words_zh(self) -> &'static str {
        match self {
            Self::Renewal => "延续",
            Self::Change => "变更",
            Self::Replacement => "补证",
            Self::Exchange => "换证",
        }
    }
}

use Status::{Annulled, Cancelled, Expired, NotYetValid, Revoked, Suspended, Valid, Withdrawn};

/// The transition table (spec/formats.md §4.1): each action, the effective statuses it may be
/// taken from, and the stored status it leads to. Every other (action, status) pair is refused.
/// Superseded and cancelled are final. Expired and not yet valid are derived from the dates, so
/// an action "from" them leaves the licence's dates alone.
pub const TRANSITIONS: [(Action, &[Status], Status); 6] = [
    (Action::Suspend, &[Valid], Suspended),
    (Action::Reinstate, &[Suspended], Valid),
    (Action::Withdraw, &[Valid, Suspended, NotYetValid], Withdrawn),
    // A defective grant is voided even after it has expired.
    (Action::Annul, &[Valid, Suspended, NotYetValid, Expired], Annulled),
    (Action::Revoke, &[Valid, Suspended], Revoked),
    // 注销 closes the file whatever ended the licence (art. 70), and a live one whose holder ended.
    (Action::Cancel, &[Valid, Suspended, NotYetValid, Expired, Withdrawn, Annulled, Revoked], Cancelled),
];

impl Action {
    pub const ALL: [Action; 6] =
        [Action::Suspend, Action::Reinstate, Action::Withdraw, Action::Annul, Action::Revoke, Action::Cancel];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspend => "suspend",
            Self::Reinstate => "reinstate",
            Self::Withdraw => "withdraw",
            Self::Annul => "annul",
            Self::Revoke => "revoke",
            Self::Cancel => "cancel",
        }
    }

    /// The Chinese name of the act.
    pub fn words_zh(self) -> &'static str {
        match self {
            Self::Suspend => "暂扣",
            Self::Reinstate => "恢复",
            Self::Withdraw => "撤回",
            Self::Annul => "撤销",
            Self::Revoke => "吊销",
            Self::Cancel => "注销",
        }
    }

    /// The stored status after this action on a licence whose effective status is `from`, or
    /// `None` if [`TRANSITIONS`] does not allow it.
    pub fn apply(self, from: Status) -> Option<Status> {
        TRANSITIONS.iter().find(|(a, froms, _)| *a == self && froms.contains(&from)).map(|(_, _, to)| *to)
    }
}

impl Status {
    pub const ALL: [Status; 9] =
        [Valid, Suspended, Withdrawn, Annulled, Revoked, Cancelled, Status::Superseded, Expired, NotYetValid];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Suspended => "suspended",
            Self::Withdrawn => "withdrawn",
            Self::Annulled => "annulled",
            Self::Revoked => "revoked",
            Self::Cancelled => "cancelled",
            Self::Superseded => "superseded",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The words shown to people (DOMAIN.md "Status words on screen").
    pub fn words_zh(self) -> &'static str {
        match self {
            Self::Valid => "有效",
            Self::Suspended => "已暂扣",
            Self::Withdrawn => "已撤回",
            Self::Annulled => "已撤销",
            Self::Revoked => "已吊销",
            Self::Cancelled => "已注销",
            Self::Superseded => "已更新（有新版本）",
            Self::Expired => "已过期",
            Self::NotYetValid => "未生效",
        }
    }

    /// The effective status of a licence with stored status `self` at time `now` (unix seconds).
    /// A stored status other than valid wins over the derived ones: a revoked licence that has
    /// also expired is reported revoked. A suspension with an end (`suspended_until`) lifts by
    /// itself then.
    pub fn effective(self, now: i64, nbf: i64, exp: Option<i64>, suspended_until: Option<i64>) -> Status {
        let lifted = self == Suspended && suspended_until.is_some_and(|u| now >= u);
        if self != Valid && !lifted {
            return self;
        }
        if now < nbf {
            NotYetValid
        } else if exp.is_some_and(|e| now >= e) {
            Expired
        } else {
            Valid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every action from every status, against the table written out by hand (the same table
    /// as spec/formats.md §4.1): `-` refused, else the status it leads to.
    #[test]
    fn every_action_from_every_status() {
        let table = [
            // from          suspend     reinstate  withdraw    annul       revoke     cancel
            ("valid", ["suspended", "-", "withdrawn", "annulled", "revoked", "cancelled"]),
            ("suspended", ["-", "valid", "withdrawn", "annulled", "revoked", "cancelled"]),
            ("withdrawn", ["-", "-", "-", "-", "-", "cancelled"]),
            ("annulled", ["-", "-", "-", "-", "-", "cancelled"]),
            ("revoked", ["-", "-", "-", "-", "-", "cancelled"]),
            ("cancelled", ["-", "-", "-", "-", "-", "-"]),
            ("superseded", ["-", "-", "-", "-", "-", "-"]),
            ("expired", ["-", "-", "-", "annulled", "-", "cancelled"]),
            ("not_yet_valid", ["-", "-", "withdrawn", "annulled", "-", "cancelled"]),
        ];
        assert_eq!(table.len(), Status::ALL.len());
        for (from, row) in table {
            let from = Status::parse(from).unwrap();
            for (action, want) in Action::ALL.into_iter().zip(row) {
                let got = action.apply(from).map_or("-", Status::as_str);
                assert_eq!(got, want, "{} from {}", action.as_str(), from.as_str());
            }
        }
        // Nothing leads to a derived status or to superseded (only a new version does that).
        for (_, _, to) in TRANSITIONS {
            assert!(![Expired, NotYetValid, Status::Superseded].contains(&to));
        }
    }

    #[test]
    fn a_suspension_with_an_end_lifts_by_itself() {
        assert_eq!(Suspended.effective(99, 10, None, Some(100)), Suspended);
        assert_eq!(Suspended.effective(100, 10, None, Some(100)), Valid);
        assert_eq!(Suspended.effective(100, 10, Some(100), Some(100)), Expired);
        assert_eq!(Suspended.effective(1_000, 10, None, None), Suspended);
        assert_eq!(Revoked.effective(1_000, 10, None, Some(100)), Revoked);
    }

    #[test]
    fn derived_statuses() {
        assert_eq!(Valid.effective(5, 10, None, None), NotYetValid);
        assert_eq!(Valid.effective(10, 10, Some(20), None), Valid);
        assert_eq!(Valid.effective(20, 10, Some(20), None), Expired);
        assert_eq!(Revoked.effective(30, 10, Some(20), None), Revoked);
    }
}
