//! Why guestgate did what it did with a request: one closed set of reasons, each with its
//! fixed label (audit lines, metric labels, JSON bodies) and the answer it gets. The error
//! types of framing, targets, sessions and policies convert into it; nothing else spells
//! a reason.

use crate::framing::FramingError;
use crate::policy::DenyReason;
use crate::session::SessionError;
use crate::target::TargetError;

/// Every reason guestgate forwards, passes or refuses a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is documented by its label in `label()`
pub enum Reason {
    // forwarded
    Rule,
    NoSession,
    // framing, for every request
    FramingClAndTe,
    FramingDuplicateContentLength,
    FramingContentLengthInvalid,
    FramingContentLengthTooLarge,
    FramingDuplicateTransferEncoding,
    FramingTransferEncodingUnsupported,
    FramingTransferEncodingInvalid,
    FramingObsFold,
    FramingHostCount,
    FramingHostInvalid,
    FramingConfusableHeader,
    FramingBodyOnBodilessMethod,
    FramingLengthRequired,
    FramingConnectionNomination,
    FramingMalformed,
    // the guest cookie
    SessionMalformed,
    SessionUnknownKey,
    SessionInvalid,
    SessionExpired,
    SessionNoShares,
    SessionAmbiguous,
    SessionMisnamed,
    // where and what
    HostNotPublic,
    TargetTooLong,
    TargetNotOriginForm,
    TargetFragment,
    TargetForbiddenByte,
    TargetBadPercentEncoding,
    TargetBadUtf8,
    TargetEncodedDelimiter,
    TargetDotSegment,
    TargetDotLikeSegment,
    TargetLookalikeDelimiter,
    TargetEmptySegment,
    TargetSemicolon,
    TargetBadQuery,
    TargetUnforwardable,
    MethodOverride,
    // the policy and the shares
    QueryTooManyKeys,
    NoRule,
    MethodNotAllowed,
    QueryKeyNotAllowed,
    QueryRepeatedKey,
    QueryRequirement,
    ScopeMismatch,
    ProfileUnknown,
    HeaderValueInvalid,
    ShareExpired,
    ShareInactive,
    // state
    StoreStale,
}

/// What a refused request is answered with: a status and the page or JSON `error` that
/// go with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 400: malformed or ambiguous.
    BadRequest,
    /// 411: a body without a length, for an app that cannot read chunked bodies.
    LengthRequired,
    /// 413: the announced body is larger than guestgate accepts.
    TooLarge,
    /// 414: the target is too long.
    TooLong,
    /// 421: a guest request to a host that is not a public host.
    Misdirected,
    /// 501: a transfer coding guestgate does not forward.
    NotImplemented,
    /// 403: not part of what was shared.
    Forbidden,
    /// 403: no guest session on a host dedicated to guests.
    NoSession,
    /// 403: the session, or every share in it, has ended (expired or revoked).
    AccessEnded,
    /// 403: the guest cookie cannot be read (bad signature, foreign key, two copies).
    SessionInvalid,
    /// 503: share state cannot be confirmed (shared store out of reach): fail closed.
    Unavailable,
}

impl Answer {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::LengthRequired => 411,
            Self::TooLarge => 413,
            Self::TooLong => 414,
            Self::Misdirected => 421,
            Self::NotImplemented => 501,
            Self::Forbidden | Self::NoSession | Self::AccessEnded | Self::SessionInvalid => 403,
            Self::Unavailable => 503,
        }
    }

    /// The `error` of the JSON body.
    pub fn error(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::LengthRequired => "length_required",
            Self::TooLarge => "content_too_large",
            Self::TooLong => "uri_too_long",
            Self::Misdirected => "misdirected_request",
            Self::NotImplemented => "not_implemented",
            Self::Forbidden | Self::NoSession | Self::AccessEnded | Self::SessionInvalid => {
                "forbidden"
            }
            Self::Unavailable => "unavailable",
        }
    }

    /// The audit `decision`: `deny` for policy and session refusals, `reject` for the
    /// request's shape, `unavailable` when state cannot be confirmed.
    pub fn decision(self) -> &'static str {
        match self {
            Self::Forbidden | Self::NoSession | Self::AccessEnded | Self::SessionInvalid => "deny",
            Self::Unavailable => "unavailable",
            _ => "reject",
        }
    }

    /// Whether the connection is closed after the answer whatever the body: a request
    /// refused for its shape cannot be trusted to end where it says.
    pub fn closes(self) -> bool {
        !matches!(
            self,
            Self::Forbidden | Self::NoSession | Self::AccessEnded | Self::SessionInvalid
        )
    }
}

impl Reason {
    /// The fixed label: audit `reason`, metric label, JSON `reason`.
    pub fn label(self) -> &'static str {
        use Reason::*;
        match self {
            Rule => "rule",
            NoSession => "no_session",
            FramingClAndTe => "framing_cl_and_te",
            FramingDuplicateContentLength => "framing_duplicate_content_length",
            FramingContentLengthInvalid => "framing_content_length_invalid",
            FramingContentLengthTooLarge => "framing_content_length_too_large",
            FramingDuplicateTransferEncoding => "framing_duplicate_transfer_encoding",
            FramingTransferEncodingUnsupported => "framing_transfer_encoding_unsupported",
            FramingTransferEncodingInvalid => "framing_transfer_encoding_invalid",
            FramingObsFold => "framing_obs_fold",
            FramingHostCount => "framing_host_count",
            FramingHostInvalid => "framing_host_invalid",
            FramingConfusableHeader => "framing_confusable_header",
            FramingBodyOnBodilessMethod => "framing_body_on_bodiless_method",
            FramingLengthRequired => "framing_length_required",
            FramingConnectionNomination => "framing_connection_nomination",
            FramingMalformed => "framing_malformed",
            SessionMalformed => "session_malformed",
            SessionUnknownKey => "session_unknown_key",
            SessionInvalid => "session_invalid",
            SessionExpired => "session_expired",
            SessionNoShares => "session_no_shares",
            SessionAmbiguous => "session_ambiguous",
            SessionMisnamed => "session_misnamed",
            HostNotPublic => "host_not_public",
            TargetTooLong => "target_too_long",
            TargetNotOriginForm => "target_not_origin_form",
            TargetFragment => "target_fragment",
            TargetForbiddenByte => "target_forbidden_byte",
            TargetBadPercentEncoding => "target_bad_percent_encoding",
            TargetBadUtf8 => "target_bad_utf8",
            TargetEncodedDelimiter => "target_encoded_delimiter",
            TargetDotSegment => "target_dot_segment",
            TargetDotLikeSegment => "target_dot_like_segment",
            TargetLookalikeDelimiter => "target_lookalike_delimiter",
            TargetEmptySegment => "target_empty_segment",
            TargetSemicolon => "target_semicolon",
            TargetBadQuery => "target_bad_query",
            TargetUnforwardable => "target_unforwardable",
            MethodOverride => "method_override",
            QueryTooManyKeys => "query_too_many_keys",
            NoRule => "no_rule",
            MethodNotAllowed => "method_not_allowed",
            QueryKeyNotAllowed => "query_key_not_allowed",
            QueryRepeatedKey => "query_repeated_key",
            QueryRequirement => "query_requirement",
            ScopeMismatch => "scope_mismatch",
            ProfileUnknown => "profile_unknown",
            HeaderValueInvalid => "header_value_invalid",
            ShareExpired => "share_expired",
            ShareInactive => "share_inactive",
            StoreStale => "store_stale",
        }
    }

    /// The answer a refusal for this reason gets (`None`: a reason to forward).
    pub fn answer(self) -> Option<Answer> {
        use Reason::*;
        Some(match self {
            Rule => return None,
            NoSession => Answer::NoSession,
            FramingContentLengthTooLarge => Answer::TooLarge,
            FramingTransferEncodingUnsupported => Answer::NotImplemented,
            FramingLengthRequired => Answer::LengthRequired,
            FramingClAndTe
            | FramingDuplicateContentLength
            | FramingContentLengthInvalid
            | FramingDuplicateTransferEncoding
            | FramingTransferEncodingInvalid
            | FramingObsFold
            | FramingHostCount
            | FramingHostInvalid
            | FramingConfusableHeader
            | FramingBodyOnBodilessMethod
            | FramingConnectionNomination
            | FramingMalformed => Answer::BadRequest,
            SessionExpired | SessionNoShares | ShareExpired | ShareInactive => Answer::AccessEnded,
            SessionMalformed | SessionUnknownKey | SessionInvalid | SessionAmbiguous
            | SessionMisnamed => Answer::SessionInvalid,
            HostNotPublic => Answer::Misdirected,
            TargetTooLong => Answer::TooLong,
            TargetNotOriginForm
            | TargetFragment
            | TargetForbiddenByte
            | TargetBadPercentEncoding
            | TargetBadUtf8
            | TargetEncodedDelimiter
            | TargetDotSegment
            | TargetDotLikeSegment
            | TargetLookalikeDelimiter
            | TargetEmptySegment
            | TargetSemicolon
            | TargetBadQuery => Answer::BadRequest,
            TargetUnforwardable | MethodOverride | QueryTooManyKeys | NoRule | MethodNotAllowed
            | QueryKeyNotAllowed | QueryRepeatedKey | QueryRequirement | ScopeMismatch
            | ProfileUnknown | HeaderValueInvalid => Answer::Forbidden,
            StoreStale => Answer::Unavailable,
        })
    }
}

impl From<FramingError> for Reason {
    fn from(e: FramingError) -> Self {
        use FramingError as F;
        match e {
            F::ContentLengthAndTransferEncoding => Self::FramingClAndTe,
            F::DuplicateContentLength => Self::FramingDuplicateContentLength,
            F::ContentLengthInvalid => Self::FramingContentLengthInvalid,
            F::ContentLengthTooLarge => Self::FramingContentLengthTooLarge,
            F::DuplicateTransferEncoding => Self::FramingDuplicateTransferEncoding,
            F::TransferEncodingUnsupported => Self::FramingTransferEncodingUnsupported,
            F::TransferEncodingInvalid => Self::FramingTransferEncodingInvalid,
            F::ObsFold => Self::FramingObsFold,
            F::HostCount => Self::FramingHostCount,
            F::HostInvalid => Self::FramingHostInvalid,
            F::ConfusableHeaderName => Self::FramingConfusableHeader,
            F::BodyOnBodilessMethod => Self::FramingBodyOnBodilessMethod,
            F::LengthRequired => Self::FramingLengthRequired,
            F::ConnectionNomination => Self::FramingConnectionNomination,
            F::Malformed => Self::FramingMalformed,
        }
    }
}

impl From<TargetError> for Reason {
    fn from(e: TargetError) -> Self {
        use TargetError as T;
        match e {
            T::TooLong => Self::TargetTooLong,
            T::NotOriginForm => Self::TargetNotOriginForm,
            T::Fragment => Self::TargetFragment,
            T::ForbiddenByte => Self::TargetForbiddenByte,
            T::BadPercentEncoding => Self::TargetBadPercentEncoding,
            T::BadUtf8 => Self::TargetBadUtf8,
            T::EncodedDelimiter => Self::TargetEncodedDelimiter,
            T::DotSegment => Self::TargetDotSegment,
            T::DotLikeSegment => Self::TargetDotLikeSegment,
            T::LookalikeDelimiter => Self::TargetLookalikeDelimiter,
            T::EmptySegment => Self::TargetEmptySegment,
            T::Semicolon => Self::TargetSemicolon,
            T::BadQuery => Self::TargetBadQuery,
        }
    }
}

impl From<SessionError> for Reason {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Malformed => Self::SessionMalformed,
            SessionError::UnknownKey => Self::SessionUnknownKey,
            SessionError::Invalid => Self::SessionInvalid,
            SessionError::Expired => Self::SessionExpired,
            SessionError::NoShares => Self::SessionNoShares,
        }
    }
}

impl From<DenyReason> for Reason {
    fn from(e: DenyReason) -> Self {
        match e {
            DenyReason::QueryTooManyKeys => Self::QueryTooManyKeys,
            DenyReason::NoRule => Self::NoRule,
            DenyReason::Method => Self::MethodNotAllowed,
            DenyReason::QueryKey => Self::QueryKeyNotAllowed,
            DenyReason::QueryRepeated => Self::QueryRepeatedKey,
            DenyReason::QueryRequirement => Self::QueryRequirement,
            DenyReason::Scope => Self::ScopeMismatch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (status, audit decision, closes the connection)
    type Outcome = Option<(u16, &'static str, bool)>;

    /// The mapping from reason to answer, pinned: every refusal class with its status,
    /// its audit decision and whether the connection closes.
    #[test]
    fn every_reason_maps_to_one_answer() {
        use Reason::*;
        let table: &[(Reason, &str, Outcome)] = &[
            (Rule, "rule", None),
            (NoSession, "no_session", Some((403, "deny", false))),
            (
                FramingConnectionNomination,
                "framing_connection_nomination",
                Some((400, "reject", true)),
            ),
            (
                FramingClAndTe,
                "framing_cl_and_te",
                Some((400, "reject", true)),
            ),
            (
                FramingContentLengthInvalid,
                "framing_content_length_invalid",
                Some((400, "reject", true)),
            ),
            (
                FramingContentLengthTooLarge,
                "framing_content_length_too_large",
                Some((413, "reject", true)),
            ),
            (
                FramingTransferEncodingUnsupported,
                "framing_transfer_encoding_unsupported",
                Some((501, "reject", true)),
            ),
            (
                FramingLengthRequired,
                "framing_length_required",
                Some((411, "reject", true)),
            ),
            (
                FramingBodyOnBodilessMethod,
                "framing_body_on_bodiless_method",
                Some((400, "reject", true)),
            ),
            (
                SessionExpired,
                "session_expired",
                Some((403, "deny", false)),
            ),
            (
                SessionMisnamed,
                "session_misnamed",
                Some((403, "deny", false)),
            ),
            (
                HostNotPublic,
                "host_not_public",
                Some((421, "reject", true)),
            ),
            (
                TargetTooLong,
                "target_too_long",
                Some((414, "reject", true)),
            ),
            (
                TargetDotSegment,
                "target_dot_segment",
                Some((400, "reject", true)),
            ),
            (
                MethodOverride,
                "method_override",
                Some((403, "deny", false)),
            ),
            (ScopeMismatch, "scope_mismatch", Some((403, "deny", false))),
            (ShareInactive, "share_inactive", Some((403, "deny", false))),
            (StoreStale, "store_stale", Some((503, "unavailable", true))),
        ];
        for (reason, label, want) in table {
            assert_eq!(reason.label(), *label);
            let got = reason
                .answer()
                .map(|a| (a.status(), a.decision(), a.closes()));
            assert_eq!(got, *want, "{reason:?}");
        }
        assert_eq!(SessionExpired.answer(), Some(Answer::AccessEnded));
        assert_eq!(SessionAmbiguous.answer(), Some(Answer::SessionInvalid));
    }

    #[test]
    fn error_types_convert_with_their_labels() {
        assert_eq!(
            Reason::from(FramingError::ObsFold).label(),
            "framing_obs_fold"
        );
        assert_eq!(
            Reason::from(TargetError::Semicolon).label(),
            "target_semicolon"
        );
        assert_eq!(
            Reason::from(SessionError::UnknownKey).label(),
            "session_unknown_key"
        );
        assert_eq!(
            Reason::from(DenyReason::Method).label(),
            "method_not_allowed"
        );
    }
}
