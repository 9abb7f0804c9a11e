//! The decomposition: `n_v` subnetworks, each an encoder part (a row of `V_in`) and a decoder
//! part (a row of `V_out`), with one CP tensor per decomposed parameter tensor.

use crate::config::L3dConfig;
use crate::cp::CpTensor;
use crate::error::{L3dError, Result};
use nets::Model;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tensor::{Float, Tensor};

/// Stream of the seed's generator used for initialisation (training uses one stream per epoch,
/// see `train`), so that no two uses of a seed share random numbers.
pub(crate) const INIT_STREAM: u64 = u64::MAX;

/// `V_in` and `V_out` for the decomposed parameter tensors of a model.
///
/// Invariants: `names`, `param_index`, `encoder` and `decoder` have one entry per decomposed
/// tensor, in the model's parameter order; `encoder[t]` and `decoder[t]` have the shape of
/// parameter `param_index[t]` and `n_v` subnetworks. After every training step each decoder
/// subnetwork has unit norm over all its tensors together.
#[derive(Debug, Clone, PartialEq)]
pub struct Decomposition<T: Float> {
    pub n_v: usize,
    pub names: Vec<String>,
    pub param_index: Vec<usize>,
    pub encoder: Vec<CpTensor<T>>,
    pub decoder: Vec<CpTensor<T>>,
}

impl<T: Float> Decomposition<T> {
    /// Initialises a decomposition of `model` as the authors do: encoder and decoder from the
    /// same normal draw (standard deviation `1 / n_v`), each subnetwork then normalised to
    /// unit norm. Uses `config.seed`.
    pub fn new(model: &dyn Model<T>, config: &L3dConfig) -> Result<Self> {
        config.validate()?;
        let names = model.param_names();
        let shapes = model.param_shapes();
        let param_index = select_params(&names, &config.decompose)?;
        let names: Vec<String> = param_index.iter().map(|&i| names[i].clone()).collect();
        let shapes: Vec<Vec<usize>> = param_index.iter().map(|&i| shapes[i].clone()).collect();
        Self::for_shapes(&names, &shapes, param_index, config)
    }

    /// Initialises a decomposition of tensors given by name and shape (`param_index` records
    /// where each sits among the model's parameters). Same initialisation as
    /// [`Decomposition::new`].
    pub fn for_shapes(
        names: &[String],
        shapes: &[Vec<usize>],
        param_index: Vec<usize>,
        config: &L3dConfig,
    ) -> Result<Self> {
        config.validate()?;
        if names.is_empty() || names.len() != shapes.len() || names.len() != param_index.len() {
            return Err(L3dError::Decomposition(format!(
                "{} names, {} shapes and {} indices: need one of each per tensor, at least one",
                names.len(),
                shapes.len(),
                param_index.len()
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(INIT_STREAM);
        let std = 1.0 / config.n_subnetworks as f64;
        let mut encoder = Vec::new();
        for (name, shape) in names.iter().zip(shapes) {
            if shape.is_empty() || shape.contains(&0) {
                return Err(L3dError::Decomposition(format!(
                    "parameter '{name}' has shape {shape:?}; only tensors with at least one axis \
                     and no empty axis can be decomposed"
                )));
            }
            let rank = config.rank_for(name, shape.len());
            encoder.push(CpTensor::random(
                shape,
                config.n_subnetworks,
                rank,
                std,
                &mut rng,
            ));
        }
        let mut d = Self {
            n_v: config.n_subnetworks,
            names: names.to_vec(),
            param_index,
            decoder: encoder.clone(),
            encoder,
        };
        normalise(&mut d.encoder);
        d.renormalise_decoder();
        Ok(d)
    }

    /// Scales each decoder subnetwork to unit norm over all its tensors. A subnetwork of norm
    /// 0 is left as it is.
    pub fn renormalise_decoder(&mut self) {
        normalise(&mut self.decoder);
    }

    /// `|V_out[v]|` of every subnetwork (over all tensors).
    pub fn decoder_norms(&self) -> Vec<T> {
        norms(&self.decoder)
    }

    /// Subnetwork `v` of the decoder, one dense tensor per decomposed parameter.
    pub fn subnetwork(&self, v: usize) -> Vec<Tensor<T>> {
        self.decoder
            .iter()
            .map(|cp| cp.dense_subnetwork(v))
            .collect()
    }

    /// Subnetwork `v` of the encoder, one dense tensor per decomposed parameter.
    pub fn encoder_subnetwork(&self, v: usize) -> Vec<Tensor<T>> {
        self.encoder
            .iter()
            .map(|cp| cp.dense_subnetwork(v))
            .collect()
    }

    /// All factor tensors, encoder first, in a fixed order: the trainable parameters.
    pub fn factors(&self) -> Vec<&Tensor<T>> {
        self.encoder
            .iter()
            .chain(&self.decoder)
            .flat_map(|cp| cp.factors.iter())
            .collect()
    }

    /// Mutable access to the factors, in the order of [`Decomposition::factors`].
    pub fn factors_mut(&mut self) -> Vec<&mut Tensor<T>> {
        self.factors_iter_mut().collect()
    }

    /// [`Decomposition::factors_mut`] as an iterator (builds no list).
    pub fn factors_iter_mut(&mut self) -> impl Iterator<Item = &mut Tensor<T>> {
        self.encoder
            .iter_mut()
            .chain(self.decoder.iter_mut())
            .flat_map(|cp| cp.factors.iter_mut())
    }

    /// The same decomposition in another float type.
    pub fn cast<U: Float>(&self) -> Decomposition<U> {
        let cast = |cps: &[CpTensor<T>]| {
            cps.iter()
                .map(|cp| CpTensor {
                    shape: cp.shape.clone(),
                    n_v: cp.n_v,
                    rank: cp.rank,
                    factors: cp.factors.iter().map(|f| f.cast()).collect(),
                })
                .collect()
        };
        Decomposition {
            n_v: self.n_v,
            names: self.names.clone(),
            param_index: self.param_index.clone(),
            encoder: cast(&self.encoder),
            decoder: cast(&self.decoder),
        }
    }

    /// Total number of trainable factor entries.
    pub fn factor_count(&self) -> usize {
        self.factors().iter().map(|f| f.numel()).sum()
    }
}

/// Checks a decomposition against a model: every decomposed tensor must exist in the model,
/// at the recorded index, with the same shape. Lists every mismatch at once.
pub fn check_against_model<T: Float>(d: &Decomposition<T>, model: &dyn Model<T>) -> Result<()> {
    let names = model.param_names();
    let shapes = model.param_shapes();
    let mut problems = Vec::new();
    for ((name, cp), &i) in d.names.iter().zip(&d.encoder).zip(&d.param_index) {
        match names.iter().position(|n| n == name) {
            None => problems.push(format!("'{name}' is not a parameter of the model")),
            Some(j) if j != i => problems.push(format!(
                "'{name}' is parameter {j} of the model but was recorded as parameter {i}"
            )),
            Some(j) if shapes[j] != cp.shape => problems.push(format!(
                "'{name}' has shape {:?} in the model but {:?} in the decomposition",
                shapes[j], cp.shape
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(L3dError::Decomposition(format!(
            "the decomposition does not fit the model: {}",
            problems.join("; ")
        )))
    }
}

/// Indices of the parameters to decompose: all, or those named (every name must exist).
fn select_params(names: &[String], wanted: &[String]) -> Result<Vec<usize>> {
    if wanted.is_empty() {
        return Ok((0..names.len()).collect());
    }
    let unknown: Vec<&String> = wanted.iter().filter(|w| !names.contains(w)).collect();
    if !unknown.is_empty() {
        return Err(L3dError::Decomposition(format!(
            "cannot decompose {unknown:?}: the model's parameters are {names:?}"
        )));
    }
    Ok((0..names.len())
        .filter(|&i| wanted.contains(&names[i]))
        .collect())
}

fn norms<T: Float>(cps: &[CpTensor<T>]) -> Vec<T> {
    let n_v = cps.first().map_or(0, |cp| cp.n_v);
    let mut sq = vec![T::zero(); n_v];
    for cp in cps {
        for (s, n) in sq.iter_mut().zip(cp.subnetwork_sq_norms()) {
            *s += n;
        }
    }
    sq.into_iter().map(|s| s.max(T::zero()).sqrt()).collect()
}

fn normalise<T: Float>(cps: &mut [CpTensor<T>]) {
    let scale: Vec<T> = norms(cps)
        .into_iter()
        .map(|n| {
            if n > T::zero() {
                T::one() / n
            } else {
                T::one()
            }
        })
        .collect();
    for cp in cps {
        cp.scale_subnetworks(&scale);
    }
}
