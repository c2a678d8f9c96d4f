//! In-band (Goertzel) DTMF detection: placeholder, written in another worktree.
