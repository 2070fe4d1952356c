//! Licence status (DESIGN §2). Stored statuses change only through events; `expired` and
//! `not_yet_valid` are derived from the validity period and the time of asking.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Valid,
    /// 暂扣
    Suspended,
    /// 撤销/吊销
    Revoked,
    /// 注销
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
    Revoke,
    Cancel,
}

impl Action {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "suspend" => Some(Self::Suspend),
            "reinstate" => Some(Self::Reinstate),
            "revoke" => Some(Self::Revoke),
            "cancel" => Some(Self::Cancel),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspend => "suspend",
            Self::Reinstate => "reinstate",
            Self::Revoke => "revoke",
            Self::Cancel => "cancel",
        }
    }

    /// The stored status after this action, or `None` if the action is not allowed from `from`.
    /// Revoked, cancelled and superseded are final: nothing comes back from them.
    pub fn apply(self, from: Status) -> Option<Status> {
        match (self, from) {
            (Self::Suspend, Status::Valid) => Some(Status::Suspended),
            (Self::Reinstate, Status::Suspended) => Some(Status::Valid),
            (Self::Revoke, Status::Valid | Status::Suspended) => Some(Status::Revoked),
            (Self::Cancel, Status::Valid | Status::Suspended) => Some(Status::Cancelled),
            _ => None,
        }
    }
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
            Self::Cancelled => "cancelled",
            Self::Superseded => "superseded",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Valid,
            Self::Suspended,
            Self::Revoked,
            Self::Cancelled,
            Self::Superseded,
            Self::Expired,
            Self::NotYetValid,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// The words shown to people (DOMAIN.md "Status words on screen").
    pub fn words_zh(self) -> &'static str {
        match self {
            Self::Valid => "有效",
            Self::Suspended => "已暂扣",
            Self::Revoked => "已撤销",
            Self::Cancelled => "已注销",
            Self::Superseded => "已更新（有新版本）",
            Self::Expired => "已过期",
            Self::NotYetValid => "未生效",
        }
    }

    /// The effective status of a licence with stored status `self` at time `now` (unix seconds).
    /// A stored status other than valid wins over the derived ones: a revoked licence that has
    /// also expired is reported revoked.
    pub fn effective(self, now: i64, nbf: i64, exp: Option<i64>) -> Status {
        if self != Status::Valid {
            return self;
        }
        if now < nbf {
            Status::NotYetValid
        } else if exp.is_some_and(|e| now >= e) {
            Status::Expired
        } else {
            Status::Valid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        assert_eq!(Action::Suspend.apply(Status::Valid), Some(Status::Suspended));
        assert_eq!(Action::Reinstate.apply(Status::Suspended), Some(Status::Valid));
        assert_eq!(Action::Reinstate.apply(Status::Valid), None);
        assert_eq!(Action::Revoke.apply(Status::Suspended), Some(Status::Revoked));
        assert_eq!(Action::Cancel.apply(Status::Revoked), None);
        assert_eq!(Action::Suspend.apply(Status::Superseded), None);
    }

    #[test]
    fn derived_statuses() {
        assert_eq!(Status::Valid.effective(5, 10, None), Status::NotYetValid);
        assert_eq!(Status::Valid.effective(10, 10, Some(20)), Status::Valid);
        assert_eq!(Status::Valid.effective(20, 10, Some(20)), Status::Expired);
        assert_eq!(Status::Revoked.effective(30, 10, Some(20)), Status::Revoked);
    }
}
