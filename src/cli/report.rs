//! Output as a component: every result a command prints is a report that renders itself
//! for people ([`Render::text`]) and for programs ([`Render::json`]); the printer alone
//! decides which one `--json` and `-q` ask for, so commands never look at them.

use serde::Serialize;

/// Where a report's text goes. Lines are escaped for the terminal (see
/// `output::escape`) unless said otherwise; `-q` keeps only what is always shown.
pub trait Text {
    /// One result line on stdout (not with `-q`).
    fn line(&self, s: &str);
    /// One result line on stdout, shown even with `-q` (a value scripts capture).
    fn value(&self, s: &str);
    /// One line on stdout as it is, unescaped (not with `-q`).
    fn raw(&self, s: &str);
    /// One line on stderr for people (a summary, advice; not with `-q`).
    fn note(&self, s: &str);
    /// One line on stderr, shown even with `-q` (failures, warnings).
    fn warn(&self, s: &str);
}

/// One JSON document, serialized as the report's own type does (its fields in declaration
/// order), printed as one line of JSON Lines.
pub struct Json(pub(crate) String);

impl Json {
    /// `value` as one line of JSON.
    pub fn of(value: &impl Serialize) -> Json {
        Json(serde_json::to_string(value).expect("reports serialize"))
    }
}

/// A result a command prints.
pub trait Render {
    /// The lines for people.
    fn text(&self, out: &dyn Text);
    /// The document for programs; `None` when the result has nothing to say in JSON.
    fn json(&self) -> Option<Json>;
}

/// Text only: a result that says nothing in JSON.
pub struct TextOnly<F: Fn(&dyn Text)>(pub F);

impl<F: Fn(&dyn Text)> Render for TextOnly<F> {
    fn text(&self, out: &dyn Text) {
        (self.0)(out)
    }
    fn json(&self) -> Option<Json> {
        None
    }
}

/// A result whose JSON is a serializable value and whose text is a closure.
pub struct Doc<T: Serialize, F: Fn(&dyn Text)> {
    /// What programs get.
    pub json: T,
    /// What people get.
    pub text: F,
}

impl<T: Serialize, F: Fn(&dyn Text)> Render for Doc<T, F> {
    fn text(&self, out: &dyn Text) {
        (self.text)(out)
    }
    fn json(&self) -> Option<Json> {
        Some(Json::of(&self.json))
    }
}
