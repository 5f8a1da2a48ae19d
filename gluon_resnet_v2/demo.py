"""`make demo`: print the model family and a summary of the paper's ResNet-164 (pre-act)."""
import mxnet as mx

import gluon_resnet_v2 as grv


def main():
    print('%d registered networks: %s' % (len(grv.list_models()), ', '.join(grv.list_models())))
    net = grv.init_model(grv.get_model('cifar_resnet164_v2'))
    net.summary(mx.nd.zeros((1, 3, 32, 32)))


if __name__ == '__main__':
    main()
