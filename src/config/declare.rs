//! The `settings!` and `group_settings!` macros: turn the tables of settings in
//! [`super::settings`] into the runtime [`Config`](super::Config) and
//! [`GroupConfig`](super::GroupConfig), the layer types [`Args`](super::Args) and
//! [`GroupSettings`](super::GroupSettings), and the code between them, so that each
//! setting is written down once.
//!
//! For every line of the `scalars` section,
//!
//! ```text
//! /// Doc: the Config field's documentation and the flag's --help text.
//! name: Type = default => Raw as Grammar, "VALUE_NAME", "GROUPCACHED_NAME" [, check f];
//! ```
//!
//! it generates
//! - the field `name: Type` of `Config`, with the doc, and `default` in `Config::new`;
//! - the field `name: Option<Raw>` of `Args`, with the doc as help, the flag
//!   `--name` (underscores as dashes), the variable, and the file key `name`;
//! - in `Args::apply_scalars`: read `Raw` through `Grammar` (then `f`, a range
//!   check) into `Config::name`, an error naming the setting as the layer spells it;
//! - in `Args::print_scalars`: the value written back through `Grammar`.
//!
//! Fields that are not one value for one setting (groups, the member source, the
//! cluster secret) are written by hand in the `config` and `args` sections and
//! resolved in [`super::layers`].
//!
//! `group_settings!` does the same for a group's settings: a line
//!
//! ```text
//! /// Doc.
//! field(key): Type = default => Raw as Grammar, arg(...);
//! ```
//!
//! gives the field `field` of `GroupConfig` (default in `GroupConfig::new`), the
//! field `key` of `GroupSettings` (a `[[group]]` key, and a flag when `arg(...)`
//! declares one; `arg(skip)` for a file-only setting), and the lines of
//! `GroupSettings::apply` and `GroupSettings::print` that read and write it.

/// See the module documentation.
macro_rules! settings {
    (
        config {
            $(#[$config_meta:meta])*
            pub struct $Config:ident {
                $(
                    $(#[$hand_doc:meta])*
                    pub $hand:ident: $hand_ty:ty = $hand_default:expr,
                )*
            }
        }
        args {
            $(#[$args_meta:meta])*
            pub struct $Args:ident {
                before { $($before:tt)* }
                after { $($after:tt)* }
            }
        }
        scalars {
            $(
                $(#[$doc:meta])*
                $field:ident: $ty:ty = $default:expr
                    => $Raw:ty as $G:ty, $value_name:literal, $env:literal
                    $(, check $check:path)?;
            )*
        }
    ) => {
        $(#[$config_meta])*
        pub struct $Config {
            $(
                $(#[$hand_doc])*
                pub $hand: $hand_ty,
            )*
            $(
                $(#[$doc])*
                pub $field: $ty,
            )*
        }

        impl $Config {
            /// The defaults: one group `default` with no origin, a single node,
            /// loopback port 7000.
            pub fn new() -> $Config {
                $Config {
                    $( $hand: $hand_default, )*
                    $( $field: $default, )*
                }
            }
        }

        $(#[$args_meta])*
        pub struct $Args {
            $($before)*
            $(
                $(#[$doc])*
                #[cfg_attr(feature = "cli", arg(long, env = $env, value_name = $value_name))]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$Raw>,
            )*
            $($after)*
        }

        impl $Args {
            /// Sets on `cfg` every single-valued setting this layer gives; an error
            /// names the setting as `layer` spells it.
            pub(super) fn apply_scalars(
                &self,
                cfg: &mut $Config,
                layer: $crate::config::layers::Layer,
            ) -> Result<(), $crate::error::ConfigError> {
                use $crate::config::grammar::Grammar;
                $(
                    if let Some(raw) = &self.$field {
                        let named = |e| $crate::error::ConfigError::new(
                            layer.name(stringify!($field)),
                            e,
                        );
                        let value = <$G as Grammar>::parse(raw).map_err(named)?;
                        $( $check(&value).map_err(named)?; )?
                        cfg.$field = value;
                    }
                )*
                Ok(())
            }

            /// Fills every single-valued setting from `cfg`, in the form
            /// `apply_scalars` reads back.
            pub(super) fn print_scalars(&mut self, cfg: &$Config) {
                use $crate::config::grammar::Grammar;
                $( self.$field = <$G as Grammar>::print(&cfg.$field); )*
            }
        }
    };
}

/// See the module documentation.
macro_rules! group_settings {
    (
        config {
            $(#[$config_meta:meta])*
            pub struct $Group:ident {
                $(#[$name_doc:meta])*
                pub name: String,
            }
        }
        layer {
            $(#[$layer_meta:meta])*
            pub struct $Layer:ident {
                $(#[$layer_name_meta:meta])*
                pub name: Option<String>,
            }
        }
        settings {
            $(
                $(#[$doc:meta])*
                $field:ident($key:ident): $ty:ty = $default:expr
                    => $Raw:ty as $G:ty, $arg:meta;
            )*
        }
    ) => {
        $(#[$config_meta])*
        pub struct $Group {
            $(#[$name_doc])*
            pub name: String,
            $(
                $(#[$doc])*
                pub $field: $ty,
            )*
        }

        impl $Group {
            /// A group named `name` with every setting at its default.
            pub fn new(name: impl Into<String>) -> Self {
                $Group {
                    name: name.into(),
                    $( $field: $default, )*
                }
            }
        }

        $(#[$layer_meta])*
        pub struct $Layer {
            $(#[$layer_name_meta])*
            pub name: Option<String>,
            $(
                $(#[$doc])*
                #[cfg_attr(feature = "cli", $arg)]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $key: Option<$Raw>,
            )*
        }

        impl $Layer {
            /// Sets on `group` every setting this layer gives for it; `setting`
            /// names a setting (by its file key) as the layer spells it.
            pub(super) fn apply(
                &self,
                group: &mut $Group,
                setting: impl Fn(&str) -> String,
            ) -> Result<(), $crate::error::ConfigError> {
                use $crate::config::grammar::Grammar;
                $(
                    if let Some(raw) = &self.$key {
                        group.$field = <$G as Grammar>::parse(raw).map_err(|e| {
                            $crate::error::ConfigError::new(setting(stringify!($key)), e)
                        })?;
                    }
                )*
                Ok(())
            }

            /// `group` as a `[[group]]` table, in the form `apply` reads back.
            pub(super) fn print(group: &$Group) -> Self {
                use $crate::config::grammar::Grammar;
                $Layer {
                    name: Some(group.name.clone()),
                    $( $key: <$G as Grammar>::print(&group.$field), )*
                }
            }
        }
    };
}

pub(super) use {group_settings, settings};
