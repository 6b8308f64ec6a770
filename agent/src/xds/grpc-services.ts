// gRPC service definitions for @grpc/grpc-js, serialised with protobuf-es (no .proto loading
// at run time). One definition serves both the server (addService) and clients
// (makeGenericClientConstructor).
import type { ServiceDefinition, MethodDefinition } from '@grpc/grpc-js';
import { fromBinary, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import {
  DeltaDiscoveryRequestSchema, DeltaDiscoveryResponseSchema, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse,
} from './gen/envoy/service/discovery/v3/discovery_pb.js';
import {
  IstioCertificateRequestSchema, IstioCertificateResponseSchema, type IstioCertificateRequest, type IstioCertificateResponse,
} from './gen/istio/v1/auth/ca_pb.js';

function method<Req extends DescMessage, Res extends DescMessage>(
  path: string, req: Req, res: Res, requestStream: boolean, responseStream: boolean,
): MethodDefinition<MessageShape<Req>, MessageShape<Res>> {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: (m: MessageShape<Req>) => Buffer.from(toBinary(req, m)),
    requestDeserialize: (b: Buffer) => fromBinary(req, b),
    responseSerialize: (m: MessageShape<Res>) => Buffer.from(toBinary(res, m)),
    responseDeserialize: (b: Buffer) => fromBinary(res, b),
    originalName: path.split('/').pop()!,
  };
}

export const ADS_METHOD = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';
export const CA_METHOD = '/istio.v1.auth.IstioCertificateService/CreateCertificate';

export const aggregatedDiscoveryService: ServiceDefinition<{
  DeltaAggregatedResources: MethodDefinition<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;
}> = {
  DeltaAggregatedResources: method(ADS_METHOD, DeltaDiscoveryRequestSchema, DeltaDiscoveryResponseSchema, true, true),
};

export const istioCertificateService: ServiceDefinition<{
  CreateCertificate: MethodDefinition<IstioCertificateRequest, IstioCertificateResponse>;
}> = {
  CreateCertificate: method(CA_METHOD, IstioCertificateRequestSchema, IstioCertificateResponseSchema, false, false),
};
