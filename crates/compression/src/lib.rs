//! `gateway-compression`: response compression as a tower layer (work in progress: not yet
//! wired into the gateway).
