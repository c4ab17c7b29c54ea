//! placeholder: the sans-IO client session is being written.
pub struct ClientSession;
pub struct SessionConfig;
pub enum SessionEvent {}
pub enum SessionState {}
