//! MRI k-space artefacts (TorchIO's `Ghosting`, `Motion` and `Spike`).
//!
//! TorchIO edits the centred (`fftshift`ed) 3D spectrum of each channel. Every
//! edit here depends on one k-space axis only (ghosting planes, motion
//! segments) or on a handful of single frequencies (spikes), so the kernels
//! run 1D real-to-complex FFTs along that axis alone, or no FFT at all: the
//! transforms along the other axes cancel between the forward and the inverse
//! FFT. Outputs are float32, like TorchIO's `.real.float()`.

pub mod fft;
pub mod ghosting;
pub mod motion;
pub mod spike;
