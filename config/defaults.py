"""Every configuration key of the project, with its default.

Key names follow reid-strong-baseline where it has them, so that its YAML
files and habits carry over. Experiment files in configs/ override these;
so does ``KEY VALUE`` on the command line of any tool.
"""
from yacs.config import CfgNode as CN

from .dataset_table import DATASET_PRESETS

_C = CN()

# -----------------------------------------------------------------------------
# MODEL
# -----------------------------------------------------------------------------
_C.MODEL = CN()
# Device: 'auto' (cuda when present, else cpu), 'cuda', 'cuda:N' or 'cpu'
_C.MODEL.DEVICE = "auto"
# Backbone: resnet18 | resnet34 | resnet50 (torchvision layouts)
_C.MODEL.NAME = "resnet50"
# Stride of the backbone's last stage; 1 keeps a 2x larger final map (BoT trick)
_C.MODEL.LAST_STRIDE = 1
# ReLU between the stem's bn1 and max-pool; False matches BoT checkpoints
_C.MODEL.STEM_RELU = False
# Neck: 'bnneck' (BatchNorm1d before the classifier) or 'no'
_C.MODEL.NECK = "bnneck"
# Initial weights: 'imagenet' (torchvision file at PRETRAIN_PATH), 'self' (a
# checkpoint of this project or a BoT state dict at PRETRAIN_PATH) or 'none'
_C.MODEL.PRETRAIN_CHOICE = "imagenet"
# Path of the weights named by PRETRAIN_CHOICE
_C.MODEL.PRETRAIN_PATH = ""
# Label smoothing (eps 0.1) on the ID loss: 'on' or 'off'
_C.MODEL.IF_LABELSMOOTH = "on"
# Metric losses beside the ID loss: 'triplet', 'center', 'triplet_center' or 'none'
_C.MODEL.METRIC_LOSS_TYPE = "triplet_center"

# MixStyle (Zhou et al., ICLR 2021): mix the channel statistics of two images' feature maps in
# training; a generator-free reference for the image level
_C.MODEL.MIXSTYLE = CN()
# Switch MixStyle on
_C.MODEL.MIXSTYLE.ENABLED = False
# Backbone stages after which it mixes
_C.MODEL.MIXSTYLE.LAYERS = ["layer1", "layer2"]
# Probability that a training batch is mixed at each of those stages
_C.MODEL.MIXSTYLE.P = 0.5
# Beta(ALPHA, ALPHA) draws each image's mixing weight
_C.MODEL.MIXSTYLE.ALPHA = 0.1
# Partner of each image: 'crossdomain' (an image of another domain) or 'random' (any other image)
_C.MODEL.MIXSTYLE.MIX = "crossdomain"

# -----------------------------------------------------------------------------
# INPUT
# -----------------------------------------------------------------------------
_C.INPUT = CN()
# Training input size [height, width]
_C.INPUT.SIZE_TRAIN = [256, 256]
# Test input size [height, width]
_C.INPUT.SIZE_TEST = [256, 256]
# Probability of a horizontal flip in training
_C.INPUT.PROB = 0.5
# Probability of random erasing in training
_C.INPUT.RE_PROB = 0.5
# Zero padding before the random crop, in pixels
_C.INPUT.PADDING = 10
# Per-channel mean used to normalise images (ImageNet)
_C.INPUT.PIXEL_MEAN = [0.485, 0.456, 0.406]
# Per-channel std used to normalise images (ImageNet)
_C.INPUT.PIXEL_STD = [0.229, 0.224, 0.225]
# Decode large JPEGs reduced (PIL draft mode) when at least twice the target size
_C.INPUT.JPEG_DRAFT = True

# -----------------------------------------------------------------------------
# DATASETS
# -----------------------------------------------------------------------------
_C.DATASETS = CN()
# Folder that holds one folder per dataset
_C.DATASETS.ROOT_DIR = "./datasets"
# Training sources: names of entries of the dataset table (any case), e.g. [veri, vehiclex]
_C.DATASETS.SOURCES = ["veri"]
# Test set (its query and gallery splits): the name of an entry of the dataset table
_C.DATASETS.TARGET = "opri"
# Make a bad file (unreadable, truncated, badly named) an error instead of a skip
_C.DATASETS.STRICT = False
# Warn when a split's counts differ from the published ones
_C.DATASETS.CHECK_COUNTS = True
# Generate the demo data under ROOT_DIR when it is absent (demo configs only)
_C.DATASETS.GENERATE_DEMO = False
# An entry of the dataset table whose query/gallery is also evaluated at every evaluation, to choose
# settings on the sources instead of the target (e.g. veri when training on veri; '' = none)
_C.DATASETS.VALIDATION = ""
# Seed of the generated demo data
_C.DATASETS.DEMO_SEED = 0
# Size of the generated data: 'demo' (minutes) or 'bench' (a 250-identity opri-style test set)
_C.DATASETS.DEMO_PRESET = "demo"

# The dataset table: an entry DATASETS.<NAME> per dataset (VERI, VEHICLEX, OPRI, VEHICLEID, VERIWILD,
# MARKET1501); their fields, meanings and values: config/dataset_table.py
_C.DATASETS.update(DATASET_PRESETS)

# -----------------------------------------------------------------------------
# DATALOADER
# -----------------------------------------------------------------------------
_C.DATALOADER = CN()
# Worker processes per loader
_C.DATALOADER.NUM_WORKERS = 8
# 'softmax' (random batches, the ID loss alone, as in RSB) or 'softmax_triplet' (P x K identity sampler)
_C.DATALOADER.SAMPLER = "softmax_triplet"
# K: images per identity in a batch
_C.DATALOADER.NUM_INSTANCE = 4
# Identities of every source in every P x K batch: 'auto' (when the image level is on), 'yes' or 'no'
# ('no' draws identities uniformly from the merged sources, as BoT)
_C.DATALOADER.SOURCE_BALANCED = "auto"

# -----------------------------------------------------------------------------
# SOLVER
# -----------------------------------------------------------------------------
_C.SOLVER = CN()
# 'Adam', 'AdamW' or 'SGD'
_C.SOLVER.OPTIMIZER_NAME = "Adam"
# Number of epochs
_C.SOLVER.MAX_EPOCHS = 120
# Iterations per epoch; 0 means one pass over the training set
_C.SOLVER.ITERS_PER_EPOCH = 0
# Base learning rate
_C.SOLVER.BASE_LR = 3.5e-4
# Learning-rate factor for bias parameters
_C.SOLVER.BIAS_LR_FACTOR = 1.0
# SGD momentum
_C.SOLVER.MOMENTUM = 0.9
# Triplet margin
_C.SOLVER.MARGIN = 0.3
# Soft-margin triplet (log(1 + exp(d_ap - d_an))) instead of a margin
_C.SOLVER.SOFT_MARGIN = False
# Learning rate of the centers' own SGD
_C.SOLVER.CENTER_LR = 0.5
# Weight of the center loss
_C.SOLVER.CENTER_LOSS_WEIGHT = 0.0005
# Weight decay
_C.SOLVER.WEIGHT_DECAY = 0.0005
# Weight decay of bias parameters
_C.SOLVER.WEIGHT_DECAY_BIAS = 0.0005
# Learning-rate decay factor at each step
_C.SOLVER.GAMMA = 0.1
# Epochs at which the learning rate decays
_C.SOLVER.STEPS = [40, 70]
# Warm-up starts at WARMUP_FACTOR x BASE_LR
_C.SOLVER.WARMUP_FACTOR = 0.1
# Warm-up length in epochs
_C.SOLVER.WARMUP_EPOCHS = 10
# Warm-up shape: 'linear' or 'constant'
_C.SOLVER.WARMUP_METHOD = "linear"
# Save a checkpoint every N epochs (and always at the end)
_C.SOLVER.CHECKPOINT_PERIOD = 10
# Log every N iterations
_C.SOLVER.LOG_PERIOD = 20
# Evaluate on the target every N epochs (and always at the end)
_C.SOLVER.EVAL_PERIOD = 40
# Images per batch: P x K with K = DATALOADER.NUM_INSTANCE
_C.SOLVER.IMS_PER_BATCH = 64
# Random seed of everything (weights, sampler, augmentation)
_C.SOLVER.SEED = 0
# Mixed precision: 'auto' (fp16 on CUDA, off on CPU), 'off', 'fp16' or 'bf16'
_C.SOLVER.AMP = "auto"
# channels_last memory format on CUDA
_C.SOLVER.CHANNELS_LAST = True
# Show a progress bar (on a terminal only; elsewhere the epoch-end log line gives the same numbers)
_C.SOLVER.PROGRESS_BAR = True
# Write every iteration's exact loss terms to log.txt (DEBUG lines), to compare two runs
_C.SOLVER.LOG_EXACT_LOSSES = False
# Disentanglement diagnostics (domain probes, swap checks) at every evaluation
_C.SOLVER.DIAGNOSTICS = True

# -----------------------------------------------------------------------------
# DISENTANGLE: the two JIFD modules (both off = the BoT baseline)
# -----------------------------------------------------------------------------
_C.DISENTANGLE = CN()
# Domain label: 'auto' (dataset with 2+ sources, else camera), 'dataset' or 'camera'
_C.DISENTANGLE.DOMAIN_LABEL = "auto"

# Image level: DAL-style ID / domain codes with swapping
_C.DISENTANGLE.IMAGE = CN()
# Switch the image-level module on
_C.DISENTANGLE.IMAGE.ENABLED = False
# Generator working size [height, width]; [] = the re-ID input size (INPUT.SIZE_TRAIN)
_C.DISENTANGLE.IMAGE.SIZE = [128, 128]
# Channels of the first encoder / last decoder conv
_C.DISENTANGLE.IMAGE.BASE_CHANNELS = 16
# Channels of the spatial ID code c
_C.DISENTANGLE.IMAGE.ID_DIM = 64
# Length of the domain code s
_C.DISENTANGLE.IMAGE.DOMAIN_DIM = 64
# Residual blocks in E_id
_C.DISENTANGLE.IMAGE.ENCODER_RES_BLOCKS = 2
# AdaIN residual blocks in the decoder
_C.DISENTANGLE.IMAGE.DECODER_RES_BLOCKS = 2
# Hidden width of the MLP that maps s to AdaIN parameters
_C.DISENTANGLE.IMAGE.MLP_DIM = 256
# Hidden width of the MINE statistics network T
_C.DISENTANGLE.IMAGE.MINE_DIM = 128
# Hidden width of C_adv's MLP on pooled c (0 = one linear layer)
_C.DISENTANGLE.IMAGE.ADV_HIDDEN_DIM = 128
# How E_id is pushed against C_adv: 'confusion' (make C_adv's prediction uniform; C_adv learns in its
# own step) or 'reversal' (DAL's gradient-reversal layer)
_C.DISENTANGLE.IMAGE.ADVERSARY = "confusion"
# Largest scale of the gradient reversal ('reversal' only)
_C.DISENTANGLE.IMAGE.GRL_LAMBDA = 1.0
# Ramp the adversarial term from 0 to full strength over the run (DANN's schedule); False = constant
_C.DISENTANGLE.IMAGE.ADV_RAMP = True
# Learning rate of the generator, its heads, T and D (Adam)
_C.DISENTANGLE.IMAGE.LR = 1e-4
# Iterations that train the disentangler alone before joint training; 0 = none
_C.DISENTANGLE.IMAGE.WARMUP_ITERATIONS = 0
# File that keeps the warm-up for runs of the same data and generator configuration ('' = none)
_C.DISENTANGLE.IMAGE.WARMUP_CACHE = ""
# Weight of L_rec: |Dec(c_i, s_i) - x_i|_1
_C.DISENTANGLE.IMAGE.W_REC = 5.0
# Weight of L_cyc: |Dec(E_id(x_ij), s_i) - x_i|_1
_C.DISENTANGLE.IMAGE.W_CYC = 5.0
# Weight of L_code: code reconstruction of the swapped image
_C.DISENTANGLE.IMAGE.W_CODE = 1.0
# Weight of L_dom: domain classification of s (real images), and of swaps by the frozen E_dom + C_dom
_C.DISENTANGLE.IMAGE.W_DOM = 1.0
# Weight of L_adv: the term that keeps the domain out of the ID code (see ADVERSARY)
_C.DISENTANGLE.IMAGE.W_ADV = 1.0
# Weight of L_mi: MINE mutual information between ID and domain codes (0.01: its gradient on the
# encoders is about a tenth of L_rec's, the diagnostic mi_grad_ratio)
_C.DISENTANGLE.IMAGE.W_MI = 0.01
# Weight of L_gan: the swaps against the domain-conditional multi-scale LSGAN discriminator D (0 = no D)
_C.DISENTANGLE.IMAGE.W_GAN = 0.0
# Channels of D's first conv
_C.DISENTANGLE.IMAGE.DIS_CHANNELS = 32
# Scales D judges (each half the previous)
_C.DISENTANGLE.IMAGE.DIS_SCALES = 3
# Weight of L_gen: what the live re-ID model learns from swapped images (gen_id + gen_triplet)
_C.DISENTANGLE.IMAGE.W_GEN = 0.5
# Weight of the generator's identity loss: CE of the teacher's logits on x_ij against y_i (0 = off)
_C.DISENTANGLE.IMAGE.W_GEN_ID = 0.0
# Joint iterations over which W_GEN and W_GEN_ID ramp up linearly from 0 (0 = full weight at once)
_C.DISENTANGLE.IMAGE.GEN_RAMP_ITERS = 0
# Share of each identity's swapped images that the re-ID model sees for L_gen (1.0 = all; less = faster)
_C.DISENTANGLE.IMAGE.GEN_FRACTION = 0.5
# What the re-ID model sees of a swap: 'onto_real' (x_i + up(x_ij - x_ii): the domain change on the
# sharp real image) or 'generated' (x_ij itself, upsampled from the generator's size)
_C.DISENTANGLE.IMAGE.SWAP_IMAGE = "onto_real"
# Batch-hard triplet over real images and swaps together (x_i, x_ij positives); False = swaps alone
_C.DISENTANGLE.IMAGE.GEN_JOINT_TRIPLET = True
# BatchNorm running statistics in the swap pass: 'frozen' (left to real images) or 'update'
_C.DISENTANGLE.IMAGE.SWAP_BN_STATS = "frozen"
# Soft labels for swaps and judge of the generator: 'ema' (moving average of the model),
# 'checkpoint' (TEACHER_WEIGHT, fixed) or 'none' (hard labels, no judge)
_C.DISENTANGLE.IMAGE.TEACHER = "ema"
# Largest momentum of the 'ema' teacher (ramped from 0.1 as (1 + t) / (10 + t))
_C.DISENTANGLE.IMAGE.TEACHER_MOMENTUM = 0.999
# Checkpoint of the 'checkpoint' teacher: a re-ID model trained on the same sources
_C.DISENTANGLE.IMAGE.TEACHER_WEIGHT = ""
# What the teacher labels: 'real' (x_i: the swap must say what its real image says) or 'swap' (x_ij, as DG-Net)
_C.DISENTANGLE.IMAGE.TEACHER_INPUT = "real"
# Write OUTPUT_DIR/swaps_epoch{N}.png every N epochs (0 = never)
_C.DISENTANGLE.IMAGE.VIS_PERIOD = 10

# Feature level: class disentanglement of the backbone feature (CD-VAE)
_C.DISENTANGLE.FEATURE = CN()
# Switch the feature-level module on
_C.DISENTANGLE.FEATURE.ENABLED = False
# Hidden width of the VAE G
_C.DISENTANGLE.FEATURE.HIDDEN_DIM = 512
# Latent size of the VAE G (mu and logvar each)
_C.DISENTANGLE.FEATURE.LATENT_DIM = 128
# Weight of L_frec: || G(f) - stopgrad(f) ||^2
_C.DISENTANGLE.FEATURE.W_FREC = 1.0
# Weight of L_kl
_C.DISENTANGLE.FEATURE.W_KL = 0.01
# Weight of L_conf: the class-confusion term on G(f)
_C.DISENTANGLE.FEATURE.W_CONF = 0.1
# Learning rate of C_red's own Adam step; 0 means SOLVER.BASE_LR
_C.DISENTANGLE.FEATURE.CLASSIFIER_LR = 0.0

# -----------------------------------------------------------------------------
# TEST
# -----------------------------------------------------------------------------
_C.TEST = CN()
# Images per test batch
_C.TEST.IMS_PER_BATCH = 128
# k-reciprocal re-ranking: 'yes' or 'no'
_C.TEST.RE_RANKING = "no"
# Re-ranking k1
_C.TEST.RE_RANKING_K1 = 20
# Re-ranking k2
_C.TEST.RE_RANKING_K2 = 6
# Re-ranking lambda
_C.TEST.RE_RANKING_LAMBDA = 0.3
# Checkpoint to test (this project's or a BoT state dict)
_C.TEST.WEIGHT = ""
# Test feature: 'after' the BNNeck or 'before' it
_C.TEST.NECK_FEAT = "after"
# L2-normalise test features: 'yes' or 'no'
_C.TEST.FEAT_NORM = "yes"
# Distance: 'euclidean' (squared) or 'cosine'
_C.TEST.DISTANCE = "euclidean"
# Longest CMC reported
_C.TEST.MAX_RANK = 50
# Memory bound of the blocked evaluator's working set, in MB
_C.TEST.EVAL_MEMORY_MB = 512
# Average the features of each image and its mirror
_C.TEST.FLIP = False
# Average query expansion (fast-reid's keys and definition), applied before ranking or re-ranking
_C.TEST.AQE = CN()
# Switch it on
_C.TEST.AQE.ENABLED = False
# Rounds of expansion
_C.TEST.AQE.QE_TIME = 1
# Neighbours averaged, the image itself included
_C.TEST.AQE.QE_K = 5
# Each neighbour weighs (cosine similarity) ** ALPHA
_C.TEST.AQE.ALPHA = 3.0
# Largest fraction of the query or of the gallery that may be unreadable (evaluated as blank images);
# above it the evaluation refuses and writes no metrics
_C.TEST.MAX_UNREADABLE = 0.01

# -----------------------------------------------------------------------------
# Misc
# -----------------------------------------------------------------------------
# Where logs, checkpoints, pictures and metrics go
_C.OUTPUT_DIR = "./logs"
