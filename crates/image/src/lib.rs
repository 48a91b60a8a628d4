//! Image store for berth (under construction).
