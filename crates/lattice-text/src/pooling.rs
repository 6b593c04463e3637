//! One vector per text from its token embeddings, then unit length (the flows take unit
//! embeddings, as seed 002's pipeline gives them).

use candle_core::Tensor;

use crate::folder::Pooling;

/// `[batch, dim]` from `hidden` `[batch, tokens, dim]` and `mask` `[batch, tokens]` (f32).
pub fn pool(hidden: &Tensor, mask: &Tensor, pooling: Pooling) -> candle_core::Result<Tensor> {
    match pooling {
        Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1),
        Pooling::Mean => {
            let summed = hidden.broadcast_mul(&mask.unsqueeze(2)?)?.sum(1)?;
            // Every text has at least its special tokens, so the count is ≥ 1; the floor only
            // guards a model whose tokenizer adds none to an empty text.
            let count = mask.sum_keepdim(1)?.clamp(1e-9, f64::MAX)?;
            summed.broadcast_div(&count)
        }
    }
}

/// Scales `row` to unit L2 norm, the norm summed in f64 so the result is unit to ~1e-7.
/// A zero row stays zero rather than becoming NaN.
pub fn l2_normalize(row: &mut [f32]) {
    let norm = row
        .iter()
        .map(|&v| f64::from(v).powi(2))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for v in row {
            *v = (f64::from(*v) / norm) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn mean_pooling_ignores_padding_and_cls_takes_the_first_token() {
        let dev = Device::Cpu;
        // Two texts of 3 tokens, dim 2; the second has one pad token with a huge value.
        let hidden = Tensor::new(
            &[
                [[1f32, 2.], [3., 4.], [5., 6.]],
                [[1., 1.], [3., 5.], [1e6, -1e6]],
            ],
            &dev,
        )
        .unwrap();
        let mask = Tensor::new(&[[1f32, 1., 1.], [1., 1., 0.]], &dev).unwrap();
        let mean = pool(&hidden, &mask, Pooling::Mean).unwrap();
        assert_eq!(mean.to_vec2::<f32>().unwrap(), [[3., 4.], [2., 3.]]);
        let cls = pool(&hidden, &mask, Pooling::Cls).unwrap();
        assert_eq!(cls.to_vec2::<f32>().unwrap(), [[1., 2.], [1., 1.]]);
    }

    #[test]
    fn normalized_rows_have_unit_norm_and_zero_stays_zero() {
        let mut row = [3f32, 4.0];
        l2_normalize(&mut row);
        assert_eq!(row, [0.6, 0.8]);
        let mut zero = [0f32; 3];
        l2_normalize(&mut zero);
        assert_eq!(zero, [0.0; 3]);
    }
}
