"""Image-level disentanglement (JIFD after DAL): ID code, domain code, decoder, heads.

An image x is split into a spatial identity code c = E_id(x) and a domain
code s = E_dom(x); Dec(c, s) draws the vehicle of c in the style of s, so
Dec(c_i, s_j) is image i moved into image j's domain. C_dom reads the domain
from s, C_adv tries to read it from pooled c (the losses decide how E_id is
pushed against it), and T is the MINE statistics network that estimates the
mutual information between c and s.

Pixel range: the generator works on images in [-1, 1] (tanh output) at
DISENTANGLE.IMAGE.SIZE. ``from_reid`` turns a re-ID batch (normalised with
INPUT.PIXEL_MEAN/STD at the re-ID size) into that range and size;
``to_reid`` and ``swap_onto`` turn generated images back into re-ID input,
differentiably, so that the teacher's identity judgement can train the
generator (DISENTANGLE.IMAGE.W_GEN_ID).
"""
import torch
import torch.nn.functional as F
from torch import nn


def generator_size(cfg):
    """(height, width) the generator works at: DISENTANGLE.IMAGE.SIZE, or the re-ID input size when empty."""
    size = cfg.DISENTANGLE.IMAGE.SIZE or cfg.INPUT.SIZE_TRAIN
    return tuple(int(v) for v in size)


def _conv(in_ch, out_ch, kernel, stride=1):
    # Zero padding, not MUNIT's reflection: cheaper, and the swaps are no worse (README, design table).
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding=(kernel - 1) // 2 if stride == 1 else 1)


class _ConvBlock(nn.Sequential):
    """conv -> optional norm -> ReLU."""

    def __init__(self, in_ch, out_ch, kernel, stride=1, norm=None):
        layers = [_conv(in_ch, out_ch, kernel, stride)]
        if norm is not None:
            layers.append(norm(out_ch))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def _layer_norm(channels):
    # LayerNorm over (C, H, W) with a per-channel affine; independent of the batch.
    return nn.GroupNorm(1, channels)


class _ResBlock(nn.Module):
    """x + conv(ReLU(conv(x)))."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels, 3), nn.ReLU(inplace=True), _conv(channels, channels, 3))

    def forward(self, x):
        return x + self.body(x)


class IdentityEncoder(nn.Module):
    """E_id: 4 conv blocks (2 of stride 2) + residual blocks -> c, B x id_dim x H/4 x W/4.

    Unlike method.md's E_id, c is not instance-normalised (README, design
    table): instance norm strips each image's global colour statistics, and a
    vehicle's colour is identity, not domain. C_adv and the MINE term keep the
    domain out of c instead.
    """

    def __init__(self, base_channels, id_dim, res_blocks):
        super().__init__()
        b = base_channels
        self.net = nn.Sequential(
            _ConvBlock(3, b, 3),
            _ConvBlock(b, 2 * b, 4, stride=2),
            _ConvBlock(2 * b, 4 * b, 4, stride=2),
            _ConvBlock(4 * b, id_dim, 3),
            *[_ResBlock(id_dim) for _ in range(res_blocks)])

    def forward(self, x):
        return self.net(x)


class DomainEncoder(nn.Module):
    """E_dom: 4 stride-2 conv blocks + global average pooling + linear -> s, B x domain_dim.

    No normalisation: the channel statistics it would remove are the style.
    """

    def __init__(self, base_channels, domain_dim):
        super().__init__()
        b = base_channels
        self.net = nn.Sequential(
            _ConvBlock(3, b, 4, stride=2),
            _ConvBlock(b, 2 * b, 4, stride=2),
            _ConvBlock(2 * b, 4 * b, 4, stride=2),
            _ConvBlock(4 * b, 4 * b, 4, stride=2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten())
        self.fc = nn.Linear(4 * b, domain_dim)

    def forward(self, x):
        return self.fc(self.net(x))


class _AdaINResBlock(nn.Module):
    """Residual block whose two instance norms take scale and shift from the domain code."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = _conv(channels, channels, 3)
        self.conv2 = _conv(channels, channels, 3)

    @staticmethod
    def _adain(x, gamma, beta):
        # 1 + gamma: an untrained MLP (output near 0) starts from plain instance norm.
        x = F.instance_norm(x)
        return x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]

    def forward(self, x, params):
        gamma1, beta1, gamma2, beta2 = params
        h = F.relu(self._adain(self.conv1(x), gamma1, beta1))
        return x + self._adain(self.conv2(h), gamma2, beta2)


class Decoder(nn.Module):
    """Dec(c, s): AdaIN residual blocks (MLP(s) gives their scale/shift), 2 upsampling blocks, tanh."""

    def __init__(self, id_dim, domain_dim, base_channels, res_blocks, mlp_dim):
        super().__init__()
        b = base_channels
        self.id_dim = id_dim
        self.blocks = nn.ModuleList(_AdaINResBlock(id_dim) for _ in range(res_blocks))
        self.mlp = nn.Sequential(
            nn.Linear(domain_dim, mlp_dim), nn.ReLU(inplace=True),
            nn.Linear(mlp_dim, mlp_dim), nn.ReLU(inplace=True),
            nn.Linear(mlp_dim, 4 * id_dim * res_blocks))
        self.upsample = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            _ConvBlock(id_dim, 2 * b, 3, norm=_layer_norm),
            nn.Upsample(scale_factor=2, mode="nearest"),
            _ConvBlock(2 * b, b, 3, norm=_layer_norm),
            _conv(b, 3, 3),
            nn.Tanh())

    def forward(self, c, s):
        params = self.mlp(s).split(self.id_dim, dim=1)
        h = c
        for index, block in enumerate(self.blocks):
            h = block(h, params[4 * index:4 * index + 4])
        return self.upsample(h)


class MineStatistics(nn.Module):
    """T(pooled c, s) -> one score per pair, for the Donsker-Varadhan bound of MINE."""

    def __init__(self, id_dim, domain_dim, hidden_dim):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(id_dim + domain_dim, hidden_dim), nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, hidden_dim), nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, 1))

    def forward(self, pooled_id, domain_code):
        return self.net(torch.cat([pooled_id, domain_code], dim=1)).squeeze(1)


class AdversarialDomainClassifier(nn.Module):
    """C_adv: standardisation -> MLP (or linear) -> domain logits, on pooled c.

    Each feature is standardised over the batch (a BatchNorm without
    parameters or running statistics), as a fresh probe standardises its
    inputs: the adversary is blind to c's scale, so that E_id cannot escape it
    by growing or shrinking c (unbounded without instance norm), yet it sees a
    shift of every image of one domain, which a per-image norm would hide. How E_id is pushed against it (gradient reversal or confusion) is the
    loss's business (layers.image_disentangle_loss).
    """

    def __init__(self, in_dim, num_domains, hidden_dim):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_dim, affine=False, track_running_stats=False)
        if hidden_dim:
            self.head = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True),
                                      nn.Linear(hidden_dim, num_domains))
        else:
            self.head = nn.Linear(in_dim, num_domains)

    def forward(self, pooled_id):
        return self.head(self.norm(pooled_id))


class ImageDisentangler(nn.Module):
    """E_id, E_dom, Dec, C_dom, C_adv and T, sized by DISENTANGLE.IMAGE.*."""

    def __init__(self, cfg, num_domains):
        super().__init__()
        image_cfg = cfg.DISENTANGLE.IMAGE
        base, id_dim, domain_dim = image_cfg.BASE_CHANNELS, image_cfg.ID_DIM, image_cfg.DOMAIN_DIM
        self.size = generator_size(cfg)
        self.id_encoder = IdentityEncoder(base, id_dim, image_cfg.ENCODER_RES_BLOCKS)
        self.domain_encoder = DomainEncoder(base, domain_dim)
        self.decoder = Decoder(id_dim, domain_dim, base, image_cfg.DECODER_RES_BLOCKS, image_cfg.MLP_DIM)
        self.domain_classifier = nn.Linear(domain_dim, num_domains)
        self.adversarial_classifier = AdversarialDomainClassifier(
            self.pooled_id_dim(id_dim), num_domains, image_cfg.ADV_HIDDEN_DIM)
        self.statistics_net = MineStatistics(self.pooled_id_dim(id_dim), domain_dim, image_cfg.MINE_DIM)
        self.register_buffer("pixel_mean", torch.tensor(cfg.INPUT.PIXEL_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.INPUT.PIXEL_STD).view(1, 3, 1, 1),
                             persistent=False)

    def encode_id(self, x):
        return self.id_encoder(x)

    def encode_domain(self, x):
        return self.domain_encoder(x)

    def decode(self, c, s):
        return self.decoder(c, s)

    @staticmethod
    def pooled_id_dim(id_dim):
        return 2 * id_dim

    @staticmethod
    def pool_id(c):
        """B x 2 id_dim summary of c for C_adv, T and the domain probe: each channel's mean and max.

        Both, because a domain hides in either: the mean is dominated by the
        background, the max by the strongest response, where the vehicle is.
        """
        return torch.cat([c.mean(dim=(2, 3)), torch.amax(c, dim=(2, 3))], dim=1)

    def generator_parameters(self, with_adversary=True):
        """Everything the generator's Adam updates: all but T, which maximises in its own step, and
        C_adv when it learns in its own step too (``with_adversary`` False)."""
        skip = {id(p) for p in self.statistics_net.parameters()}
        if not with_adversary:
            skip |= {id(p) for p in self.adversarial_classifier.parameters()}
        return [p for p in self.parameters() if id(p) not in skip]

    @staticmethod
    def _resize(x, size):
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        shrinking = x.shape[-2] > size[0] or x.shape[-1] > size[1]
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrinking)

    def from_image_tensor(self, images):
        """Image tensors (RGB in [0, 1], as torchvision's ToTensor gives them) at any size -> generator input:
        [-1, 1] at DISENTANGLE.IMAGE.SIZE."""
        return self._resize(images, self.size) * 2 - 1

    def from_reid(self, images):
        """A re-ID batch (mean/std-normalised) -> generator input: [-1, 1] at DISENTANGLE.IMAGE.SIZE."""
        return self.from_image_tensor((images * self.pixel_std + self.pixel_mean).clamp(0, 1))

    @staticmethod
    def to_image_tensor(generated):
        """Generator images ([-1, 1]) -> image tensors (RGB in [0, 1]), for pictures."""
        return ((generated + 1) / 2).clamp(0, 1)

    def to_reid(self, generated, size):
        """Generator images -> re-ID input at ``size`` (height, width); differentiable."""
        return (self._resize((generated + 1) / 2, size) - self.pixel_mean) / self.pixel_std

    def swap_onto(self, images, swapped, reconstructed):
        """The re-ID images with the change of domain painted on: x_i + up(x_ij - x_ii).

        The generator works at a lower resolution than the re-ID model and
        blurs what it redraws; the difference between its swap and its own
        reconstruction is the domain change alone, which, added to the sharp
        real image, keeps every detail the generator could not draw.
        """
        real = images * self.pixel_std + self.pixel_mean
        change = self._resize((swapped - reconstructed) / 2, images.shape[-2:])
        return ((real + change).clamp(0, 1) - self.pixel_mean) / self.pixel_std
