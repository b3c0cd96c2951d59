//! What every projection shares and drives, and the run's life cycle hands it: the view a
//! run projects ([`spec`]), the RFC-0047 view state a projection may drive in user space
//! ([`state`]) with its journal ([`journal`]), and paths handled as bytes ([`lexical`]).

pub mod journal;
pub mod lexical;
pub mod spec;
pub mod state;
