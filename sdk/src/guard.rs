//! Guards: policy plugins that check text (a run's input, a job's output,
//! a document) before Warren keeps it or hands it on, and allow it, deny
//! it or give a redacted version. A guard is a policy aid, not the
//! security boundary: the sandbox and the grants are.
//!
//! ```no_run
//! use warren_sdk::guard::{Denial, Guard, Subject, Verdict};
//!
//! struct NoShouting;
//!
//! impl Guard for NoShouting {
//!     fn check(subject: &Subject) -> Verdict {
//!         if subject.content.contains("SHOUT") {
//!             Verdict::Deny(Denial {
//!                 category: "style.shouting".into(),
//!                 reason: "the text shouts".into(),
//!                 findings: Vec::new(),
//!             })
//!         } else {
//!             Verdict::Allow
//!         }
//!     }
//! }
//!
//! warren_sdk::export_guard!(NoShouting);
//! ```

use crate::bindings::guard::exports::warren::plugin::guard_handler as wit;

pub use wit::{Denial, Finding, Redaction, Subject, SubjectKind, Verdict};

/// A guard: one verdict for each subject it is given.
pub trait Guard {
    fn check(subject: &Subject) -> Verdict;
}

/// Adapts a [`Guard`] to the generated exports.
pub fn check_guard<G: Guard>(subject: Subject) -> Verdict {
    G::check(&subject)
}

/// Exports a [`Guard`] implementation as this component's guard handler.
#[macro_export]
macro_rules! export_guard {
    ($guard:ty) => {
        #[doc(hidden)]
        pub struct __WarrenGuardExport;

        impl $crate::bindings::guard::exports::warren::plugin::guard_handler::Guest
            for __WarrenGuardExport
        {
            fn check(
                subject: $crate::bindings::guard::exports::warren::plugin::guard_handler::Subject,
            ) -> $crate::bindings::guard::exports::warren::plugin::guard_handler::Verdict {
                $crate::__private::check_guard::<$guard>(subject)
            }
        }

        $crate::bindings::guard::__export_guard_world!(__WarrenGuardExport);
    };
}
