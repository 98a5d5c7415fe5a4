//! The Orrery satellite (issue 3).
